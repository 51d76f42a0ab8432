"""Wire-level pieces shared by the server and the client: the generated gRPC
modules (``genserve.v1``) and the numpy codec for their tensors."""
