"""genserve server: the ONNX model repository served over gRPC on onnxruntime.

Run it with ``python -m server --model-repository models``. No torch here.
"""
