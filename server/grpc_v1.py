"""The gRPC door to genserve.v1.GenerativeService: each RPC hands its request message,
with the call the gRPC gate made of it, to the RPC's translation (v1_messages)."""

from __future__ import annotations

from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc

from . import calls
from .service import Service
from .v1_messages import RPCS, STREAMS, Handler

SERVICE = pb.DESCRIPTOR.services_by_name["GenerativeService"].full_name


class GenerativeServicer(pb_grpc.GenerativeServiceServicer):
    def __init__(self, service: Service):
        self.service = service


def _method(handler: Handler):
    async def method(self: GenerativeServicer, request, context):
        return await handler(self.service, calls.current.get(), request)
    return method


def _streaming(handler):
    async def method(self: GenerativeServicer, request, context):
        async for message in handler(self.service, calls.current.get(), request):
            yield message
    return method


for _name, _handler in RPCS.items():
    setattr(GenerativeServicer, _name, _method(_handler))
for _name, _stream in STREAMS.items():
    setattr(GenerativeServicer, _name, _streaming(_stream))
