"""genserve's Python SDK: numpy in, numpy out, over gRPC.

    from client import GenerativeClient

    with GenerativeClient("localhost:50051") as client:
        digits = client.sample_digits(n=16)        # numpy uint8 [16, 28, 28]
        z_mean, z_log_var = client.encode(digits)
        again = client.decode(z_mean)
        clean = client.denoise(digits)

Every failure is a :class:`GenserveError` carrying the gRPC code and the server's message.
Needs neither torch nor onnxruntime.
"""

from ._calls import ModelInfo, TensorInfo
from .async_client import AsyncGenerativeClient
from .errors import GenserveError
from .sync_client import GenerativeClient

__all__ = ["GenerativeClient", "AsyncGenerativeClient", "GenserveError", "ModelInfo", "TensorInfo"]
