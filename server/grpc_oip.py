"""The gRPC door to the Open Inference Protocol (KServe v2, Triton's gRPC API): its
messages <-> the service core. Tensors come as typed contents or as raw little-endian
bytes; the core checks them as it checks every door's."""

from __future__ import annotations

from google.protobuf import json_format

from genserve.oip import inference_pb2 as pb
from genserve.oip import inference_pb2_grpc as pb_grpc

from . import calls
from .errors import InvalidArgument, ModelNotFound, quoted
from .service import InferInput, Service, server_version

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
CONTENTS = {"FP32": "fp32_contents", "INT64": "int64_contents"}  # the typed contents of each datatype served
# Of the protocol's extensions, those this door serves (Triton's names).
EXTENSIONS = ["model_repository", "statistics"]


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: Service):
        self.service = service

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.service.ready)

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.service.model_ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="genserve", version=server_version(), extensions=EXTENSIONS)

    async def ModelMetadata(self, request, context):
        meta = self.service.model_metadata(calls.current.get(), request.name, request.version)
        tensors = lambda specs: [pb.ModelMetadataResponse.TensorMetadata(  # noqa: E731
            name=t.name, datatype=t.datatype, shape=t.shape) for t in specs]
        return pb.ModelMetadataResponse(name=meta.name, versions=meta.versions, platform=meta.platform,
                                        inputs=tensors(meta.inputs), outputs=tensors(meta.outputs))

    async def ModelInfer(self, request, context):
        timeout = request.parameters["timeout"].int64_param if "timeout" in request.parameters else None
        answer = await self.service.infer(calls.current.get(), request.model_name, request.model_version,
                                          _inputs(request), [output.name for output in request.outputs], request.id,
                                          timeout)
        response = pb.ModelInferResponse(model_name=answer.model, model_version=str(answer.version), id=request.id)
        for name, array in answer.output:
            response.outputs.add(name=name, datatype="FP32", shape=array.shape)
            response.raw_output_contents.append(array.astype("<f4", copy=False).tobytes())
        return response


    async def ModelStatistics(self, request, context):
        response = pb.ModelStatisticsResponse()
        for name, version, figures in self.service.statistics(calls.current.get(), request.name, request.version):
            json_format.ParseDict({"name": name, "version": str(version), **figures}, response.model_stats.add())
        return response

    async def RepositoryIndex(self, request, context):
        _repository(request.repository_name)
        entries = await self.service.repository_index(calls.current.get(), request.ready)
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(
            name=e.name, version=e.version, state=e.state, reason=e.reason) for e in entries])

    async def RepositoryModelLoad(self, request, context):
        _repository(request.repository_name)
        if request.parameters:
            raise InvalidArgument(f"parameters: genserve loads models as the repository holds them; got "
                                  f"{', '.join(sorted(request.parameters))}")
        await self.service.load_model(calls.current.get(), request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request, context):
        _repository(request.repository_name)
        other = sorted(set(request.parameters) - {"unload_dependents"})  # genserve's models have none
        if other:
            raise InvalidArgument(f"parameters: only unload_dependents; got {', '.join(other)}")
        await self.service.unload_model(calls.current.get(), request.model_name)
        return pb.RepositoryModelUnloadResponse()


def _repository(name: str) -> None:
    """genserve has one model repository, whose name is empty."""
    if name:
        raise ModelNotFound(f"repository_name: {quoted(name)}: this server has one repository; leave it empty")


def _inputs(request: pb.ModelInferRequest) -> list[InferInput]:
    """The request's inputs as the core takes them: raw bytes for every input or for none."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"raw_input_contents: one entry per input ({len(request.inputs)}), got {len(raw)}")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        if raw:
            if tensor.HasField("contents"):
                raise InvalidArgument(f"inputs[{i}].contents: not allowed together with raw_input_contents")
            data, field = raw[i], f"raw_input_contents[{i}]"
        else:
            contents = CONTENTS.get(tensor.datatype, "fp32_contents")
            data, field = getattr(tensor.contents, contents), f"inputs[{i}].contents.{contents}"
        inputs.append(InferInput(tensor.name, tensor.datatype, tuple(tensor.shape), data, field))
    return inputs
