"""genserve's Python SDK: numpy in, numpy out, over gRPC.

    from client import GenerativeClient

    with GenerativeClient("localhost:50051") as client:
        digits = client.sample_digits(n=16)        # numpy uint8 [16, 28, 28]
        z_mean, z_log_var = client.encode(digits)
        again = client.decode(z_mean)
        clean = client.denoise(digits)
        for chunk in client.stream_digits(60_000, balanced=True, seed=0):
            chunk.images, chunk.digits                 # uint8 [256,28,28], int64 [256]

Every failure is a :class:`GenserveError` carrying the gRPC code and the server's
message, as a subclass per code (``InvalidArgument``, ``NotFound``, ``Unavailable``, ...).
Needs neither torch nor onnxruntime.
"""

from ._calls import DigitChunk, ModelInfo, Result, TensorInfo
from ._generated import AsyncGenerativeClient, GenerativeClient
from .errors import (Cancelled, DeadlineExceeded, FailedPrecondition, GenserveError, Internal, InvalidArgument,
                     NotFound, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable, Unimplemented)

__all__ = ["GenerativeClient", "AsyncGenerativeClient", "DigitChunk", "ModelInfo", "TensorInfo", "Result", "GenserveError",
           "InvalidArgument", "NotFound", "FailedPrecondition", "Unavailable", "Unauthenticated", "PermissionDenied",
           "ResourceExhausted", "DeadlineExceeded", "Cancelled", "Unimplemented", "Internal"]
