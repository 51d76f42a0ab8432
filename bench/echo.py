"""A gRPC echo server: the transport's own cost on this machine, to compare with.

Each request's first four bytes give the size of the answer (little-endian); the
rest pads the request to the size of the genserve request it stands in for.

    python -m bench.echo --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import functools

import grpc

METHOD = "/bench.Echo/Echo"


@functools.lru_cache(maxsize=64)
def _answer(size: int) -> bytes:
    return bytes(size)


async def _echo(request: bytes, context) -> bytes:
    return _answer(int.from_bytes(request[:4], "little"))


def request_of(size: int, answer_size: int) -> bytes:
    return answer_size.to_bytes(4, "little") + bytes(max(0, size - 4))


async def main(host: str, port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.max_send_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"echo listening on {host}:{bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
