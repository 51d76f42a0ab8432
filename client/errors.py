from __future__ import annotations

import grpc


class GenserveError(Exception):
    """Any failed call: ``code`` is the gRPC status code, ``message`` the server's words."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "GenserveError":
        return cls(error.code(), error.details() or "")
