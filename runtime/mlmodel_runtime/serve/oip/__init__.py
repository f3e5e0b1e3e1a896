"""The Open Inference Protocol's gRPC messages (`grpc_predict_v2.proto`).

`grpc_predict_v2_pb2` is generated from the .proto beside it by `generate.py`; the
service itself is served by `serve/grpc_server.py` without generated stubs (a
generic handler per method, taking and returning bytes), so that admission can
weigh a request before it is parsed.
"""
