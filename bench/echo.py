"""A gRPC echo server: the transport's own cost on this machine, to compare with.

Each request's first four bytes give the size of the answer (little-endian); the
rest pads the request to the size of the genserve request it stands in for. The same
server answers the Open Inference Protocol's ModelInfer with zeros, a 28x28 FP32
``image`` per row, and runs nothing: the protocol's cost through a Triton client. With
``--model-repository``, ModelInfer runs the named model instead, on the event loop, with
no checks, batching or metrics: the least a Python gRPC server can do per call.

    python -m bench.echo --port 0 [--model-repository models]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from pathlib import Path

import grpc
import numpy as np

METHOD = "/bench.Echo/Echo"


@functools.lru_cache(maxsize=64)
def _answer(size: int) -> bytes:
    return bytes(size)


async def _echo(request: bytes, context) -> bytes:
    return _answer(int.from_bytes(request[:4], "little"))


def request_of(size: int, answer_size: int) -> bytes:
    return answer_size.to_bytes(4, "little") + bytes(max(0, size - 4))


def add_bare_inference(server: grpc.aio.Server, repository: str | None) -> None:
    """ModelInfer answered without a model: as many zero images as the first input has
    rows; or, for a model in ``repository``, its onnxruntime run of the raw inputs.
    (Imported here: a process that loads Triton's client cannot load genserve's copy of
    the same protocol.)"""
    from genserve.oip import inference_pb2, inference_pb2_grpc

    answers: dict[tuple[str, int], inference_pb2.ModelInferResponse] = {}
    sessions = _sessions(repository) if repository else {}

    class BareInference(inference_pb2_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            session = sessions.get(request.model_name)
            if session is not None:
                feeds = {tensor.name: np.frombuffer(raw, np.float32).reshape(tensor.shape)
                         for tensor, raw in zip(request.inputs, request.raw_input_contents)}
                outputs = session.run(None, feeds)
                answer = inference_pb2.ModelInferResponse(model_name=request.model_name, model_version="1")
                for node, array in zip(session.get_outputs(), outputs):
                    answer.outputs.add(name=node.name, datatype="FP32", shape=array.shape)
                    answer.raw_output_contents.append(array.tobytes())
                return answer
            rows = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1
            answer = answers.get((request.model_name, rows))
            if answer is None:
                answer = answers[request.model_name, rows] = inference_pb2.ModelInferResponse(
                    model_name=request.model_name, model_version="1", raw_output_contents=[bytes(4 * 28 * 28 * rows)])
                answer.outputs.add(name="image", datatype="FP32", shape=[rows, 1, 28, 28])
            return answer

    inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(BareInference(), server)


def _sessions(repository: str) -> dict:
    """The newest version of each model, as genserve's sessions for a short run load it."""
    import onnxruntime as ort

    from genserve.repository import newest_versions

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    return {name: ort.InferenceSession(str(version.path), options, providers=["CPUExecutionProvider"])
            for name, version in newest_versions(Path(repository)).items()}


async def main(host: str, port: int, repository: str | None = None) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20),
                                      ("grpc.max_send_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    add_bare_inference(server, repository)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"echo listening on {host}:{bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-repository", help="run its models for ModelInfer (default: answer zeros)")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.host, args.port, args.model_repository))
    except KeyboardInterrupt:
        pass
