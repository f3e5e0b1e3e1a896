"""mlmodel-runtime: the model container of every MLModel revision.

`convert` runs in the init container (fetch, convert to ONNX, check parity);
`serve` runs in the main container (Open Inference Protocol v2 over ONNX Runtime).
"""

__version__ = "0.1.0"
