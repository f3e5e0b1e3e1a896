"""Builders and waits shared by the test modules (which never import each other).

`kube`: applying manifests and reading MLModels, Deployments and Events on the control
plane; `serving`: the e2e layer's models, load and first version; `plugin`: running
`kubectl mlmodel` as people do; `metrics`: reading a runtime's /metrics; `inprocess`:
the serving app in-process, around a tiny ONNX model or a fake session. The MLModel
builder itself is `localenv.mlmodel`, the one every layer and the demo use.
"""
