"""The Open Inference Protocol (KServe v2, Triton's gRPC API): every model of the
repository by name and version, through the same batchers, limits and metrics as
genserve.v1. Tensors come as typed contents or as raw little-endian bytes."""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, version as package_version
from typing import Sequence

import numpy as np

from genserve.oip import inference_pb2 as pb
from genserve.oip import inference_pb2_grpc as pb_grpc

from genserve.contract import ONNX_TYPES
from genserve.repository import parse_version

from .engine import Engine, LoadedModel, TensorInfo
from .errors import AnswerTooLarge, InvalidArgument, ModelNotFound, NotReady, quoted
from .servicer import GenerativeServicer, current_model, current_version, deadline
from .settings import Settings
from .tensors import MAX_RANK, check_latents, check_pixels

# The protocol's datatypes of the tensors genserve serves: onnxruntime's type -> (datatype,
# the contents field, numpy's little-endian dtype).
DATATYPES = {ONNX_TYPES["float32"]: ("FP32", "fp32_contents", np.dtype("<f4")),
             ONNX_TYPES["int64"]: ("INT64", "int64_contents", np.dtype("<i8"))}

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX models on onnxruntime
MAX_ID = 256  # characters of a request's id, which the answer repeats
ENVELOPE = 64 * 1024  # room in an answer for all but its tensors' bytes


def _server_version() -> str:
    try:
        return package_version("genserve")
    except PackageNotFoundError:
        return "unknown"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, engine: Engine, settings: Settings, generative: GenerativeServicer):
        self.engine = engine
        self.settings = settings
        self.generative = generative  # its ``ready`` flag is the server's

    def _model(self, name: str, version: str, field: str) -> LoadedModel:
        if not self.generative.ready:
            raise NotReady("the server is loading its models; retry when ServerReady is true")
        if not name:
            raise InvalidArgument(f"{field}: required; one of {', '.join(sorted(self.engine.models))}")
        if name not in self.engine.models:
            raise ModelNotFound(f"{field}: unknown model {quoted(name)}; this server has "
                                f"{', '.join(sorted(self.engine.models))}")
        current_model.set(name)
        number = parse_version(version) if version else 0
        if number is None:
            raise ModelNotFound(f"{name}: version {quoted(version)} is not served; versions are positive "
                                "integers in ASCII digits")
        model = self.engine.model(name, number)
        current_version.set(model.version.version)
        return model

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.generative.ready)

    async def ModelReady(self, request, context):
        versions = self.engine.served.get(request.name, {})
        ready = self.generative.ready and bool(versions) and (
            request.version == "" or parse_version(request.version) in versions)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="genserve", version=_server_version(), extensions=[])

    async def ModelMetadata(self, request, context):
        model = self._model(request.name, request.version, "name")
        return pb.ModelMetadataResponse(
            name=model.name, versions=[str(v) for v in sorted(self.engine.served[model.name], reverse=True)],
            platform=PLATFORM,
            inputs=[_metadata(node) for node in model.session.get_inputs()],
            outputs=[_metadata(node) for node in model.session.get_outputs()])

    async def ModelInfer(self, request, context):
        model = self._model(request.model_name, request.model_version, "model_name")
        if len(request.id) > MAX_ID:
            raise InvalidArgument(f"id: {len(request.id):,} characters; at most {MAX_ID}")
        rows = self._inputs(model, request)
        wanted = self._outputs(model, request, len(rows))
        # The model's own outputs, without the pixels genserve.v1 asks the engine for.
        outputs = await self.engine.infer(model, rows, deadline(context), pixels=False)
        response = pb.ModelInferResponse(model_name=model.name, model_version=str(model.version.version),
                                         id=request.id)
        for i in wanted:
            array = outputs[i]  # float32 (checked at load) and C-ordered: a run's or a slice of its rows
            response.outputs.add(name=model.output_names[i], datatype="FP32", shape=array.shape)
            response.raw_output_contents.append(array.astype("<f4", copy=False).tobytes())
        return response

    def _outputs(self, model: LoadedModel, request, rows: int) -> Sequence[int]:
        """The indices of the outputs asked for (all by default), each once, and only as
        many as an answer within the message limit holds: refused before the run rather
        than after it."""
        names = model.output_names
        if not request.outputs:
            wanted: Sequence[int] = range(len(names))
        elif len(request.outputs) > len(names):
            raise InvalidArgument(f"outputs: {len(request.outputs):,} asked for; {model.name} has {len(names)}")
        else:
            wanted = []
            for i, output in enumerate(request.outputs):
                if output.name not in names:
                    raise InvalidArgument(f"outputs[{i}].name: {model.name} has no output {quoted(output.name)}; "
                                          f"it has {', '.join(names)}")
                if names.index(output.name) in wanted:
                    raise InvalidArgument(f"outputs[{i}].name: {quoted(output.name)} asked for twice")
                wanted.append(names.index(output.name))
        size = rows * sum(model.output_bytes[names[i]] for i in wanted) + len(request.id.encode()) + ENVELOPE
        if size > self.settings.max_message_bytes:
            raise AnswerTooLarge(f"outputs: the answer would be {size:,} bytes, over the message limit of "
                                 f"{self.settings.max_message_bytes:,}; ask for fewer rows or outputs")
        return wanted

    def _inputs(self, model: LoadedModel, request) -> np.ndarray:
        """The request's inputs as the model's rows, after every check the genserve.v1 API
        makes: each input once, by name, in any order; raw bytes for all or none."""
        tensors = model.inputs
        if len(request.inputs) != len(tensors):
            raise InvalidArgument(f"inputs: {model.name} takes {len(tensors)} input{'s' * (len(tensors) > 1)}, "
                                  f"{_names(tensors)}; got {len(request.inputs)}")
        if request.raw_input_contents and len(request.raw_input_contents) != len(tensors):
            raise InvalidArgument(f"raw_input_contents: one entry per input ({len(tensors)}), got "
                                  f"{len(request.raw_input_contents)}")
        given: dict[str, int] = {}
        for i, tensor in enumerate(request.inputs):
            if tensor.name not in model.input_names:
                raise InvalidArgument(f"inputs[{i}].name: {model.name} takes {_names(tensors)}, "
                                      f"got {quoted(tensor.name)}")
            if tensor.name in given:
                raise InvalidArgument(f"inputs[{i}].name: {quoted(tensor.name)} given twice")
            given[tensor.name] = i
        arrays = [self._input(request, given[tensor.name], tensor) for tensor in tensors]
        if len(arrays) > 1 and len({len(a) for a in arrays}) > 1:
            raise InvalidArgument(f"inputs: every input needs the same batch size, got "
                                  f"{', '.join(str(len(a)) for a in arrays)}")
        return model.rows(*arrays)

    def _input(self, request, i: int, spec: TensorInfo) -> np.ndarray:
        tensor = request.inputs[i]
        field = f"inputs[{i}]"
        datatype, contents, dtype = DATATYPES[spec.type]
        if tensor.datatype != datatype:
            raise InvalidArgument(f"{field}.datatype: {spec.name} is {datatype}, got {quoted(tensor.datatype)}")
        if len(tensor.shape) > MAX_RANK:
            raise InvalidArgument(f"{field}.shape: {len(tensor.shape):,} axes; {spec.name} has "
                                  f"{1 + len(spec.item_shape)}")
        shape = tuple(tensor.shape)
        if not shape or shape[1:] != spec.item_shape or shape[0] < 1:
            raise InvalidArgument(f"{field}.shape: must be [{','.join(['N', *map(str, spec.item_shape)])}] with "
                                  f"N >= 1, got {list(shape)}")
        if shape[0] > self.settings.max_request_size:
            raise InvalidArgument(f"{field}.shape: batch of {shape[0]} exceeds the maximum of "
                                  f"{self.settings.max_request_size}")
        count = math.prod(shape)
        if request.raw_input_contents:
            if tensor.HasField("contents"):
                raise InvalidArgument(f"{field}.contents: not allowed together with raw_input_contents")
            raw = request.raw_input_contents[i]
            if len(raw) != count * dtype.itemsize:
                raise InvalidArgument(f"raw_input_contents[{i}]: {len(raw)} bytes, but shape {list(shape)} of "
                                      f"{datatype} needs {count * dtype.itemsize}")
            array = np.frombuffer(raw, dtype)
        else:
            values = getattr(tensor.contents, contents)
            if len(values) != count:
                raise InvalidArgument(f"{field}.contents.{contents}: {len(values)} values, but shape "
                                      f"{list(shape)} needs {count}")
            array = np.asarray(values, dtype)
        _check_values(spec, array, f"{field} ({spec.name})")
        return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _names(tensors: Sequence[TensorInfo]) -> str:
    return ", ".join(repr(tensor.name) for tensor in tensors)


def _check_values(spec: TensorInfo, array: np.ndarray, where: str) -> None:
    """The checks genserve.v1 makes of the same tensor: pixels, digits, latents."""
    if array.dtype.kind == "i":
        if len(array) and (array.min() < spec.low or array.max() > spec.high):
            bad = array[(array < spec.low) | (array > spec.high)][0]
            raise InvalidArgument(f"{where}: values must lie in [{spec.low:g}, {spec.high:g}], got {bad}")
        return
    (check_pixels if (spec.low, spec.high) == (0.0, 1.0) else check_latents)(array, where)


def _metadata(node) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=node.name, datatype=DATATYPES[node.type][0], shape=[d if isinstance(d, int) else -1 for d in node.shape])
