"""``python -m server.healthcheck``: asks the gRPC health service of a running server
and exits 0 when it is SERVING, 1 otherwise. The containers' HEALTHCHECK; no curl or
grpc_health_probe needed in the image."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def build_parser() -> argparse.ArgumentParser:
    port = os.environ.get("GENSERVE_PORT", "50051")
    p = argparse.ArgumentParser(prog="python -m server.healthcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default=f"127.0.0.1:{port}", help="host:port (default: 127.0.0.1:$GENSERVE_PORT)")
    p.add_argument("--service", default="", help="service to ask about (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    p.add_argument("--ca", type=Path, default=os.environ.get("GENSERVE_HEALTHCHECK_CA") or None, metavar="PEM",
                   help="TLS: the CA of the server's certificate [GENSERVE_HEALTHCHECK_CA]")
    p.add_argument("--server-name", default="localhost",
                   help="TLS: the name the certificate is checked against (default: localhost)")
    return p


def check(args: argparse.Namespace) -> str:
    if args.ca is not None:
        credentials = grpc.ssl_channel_credentials(args.ca.read_bytes())
        channel = grpc.secure_channel(args.target, credentials,
                                      options=[("grpc.ssl_target_name_override", args.server_name)])
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = check(args)
    except grpc.RpcError as error:
        print(f"{args.target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"--ca {args.ca}: cannot read it ({exc.strerror})", file=sys.stderr)
        return 1
    print(f"{args.target}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
