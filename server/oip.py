"""The Open Inference Protocol (KServe v2, Triton's gRPC API): every model of the
repository by name and version, through the same batchers, limits and metrics as
genserve.v1. Tensors come as typed contents or as raw little-endian bytes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as package_version

import numpy as np

from genserve.oip import inference_pb2 as pb
from genserve.oip import inference_pb2_grpc as pb_grpc

from genserve.contract import ONNX_TYPES
from genserve.repository import parse_version

from .engine import Engine, LoadedModel
from .errors import AnswerTooLarge, InvalidArgument, ModelNotFound, NotReady, quoted
from .servicer import GenerativeServicer, current_model, current_version, deadline
from .settings import Settings
from .tensors import MAX_RANK, check_latents, check_pixels

# The protocol's datatypes of the tensors genserve serves: onnxruntime's type -> (datatype,
# the contents field, numpy's little-endian dtype).
DATATYPES = {ONNX_TYPES["float32"]: ("FP32", "fp32_contents", "<f4"),
             ONNX_TYPES["int64"]: ("INT64", "int64_contents", "<i8")}

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
        # zip stops at the model's own outputs, leaving out the pixels the engine adds for genserve's API.
        outputs = dict(zip(model.output_names, await self.engine.infer(model, rows, deadline(context))))
        response = pb.ModelInferResponse(model_name=model.name, model_version=str(model.version.version),
                                         id=request.id)
        for name in wanted:
            array = np.ascontiguousarray(outputs[name], "<f4")  # every output is float32 (checked at load)
            response.outputs.add(name=name, datatype="FP32", shape=array.shape)
            response.raw_output_contents.append(array.tobytes())
        return response

    def _outputs(self, model: LoadedModel, request, rows: int) -> list[str]:
        """The outputs asked for (all by default), each once, and only as many as an answer
        within the message limit holds: refused before the run rather than after it."""
        if len(request.outputs) > len(model.output_names):
            raise InvalidArgument(f"outputs: {len(request.outputs):,} asked for; {model.name} has "
                                  f"{len(model.output_names)}")
        wanted = [o.name for o in request.outputs] or model.output_names
        for i, name in enumerate(wanted):
            if name not in model.output_names:
                raise InvalidArgument(f"outputs[{i}].name: {model.name} has no output {quoted(name)}; it has "
                                      f"{', '.join(model.output_names)}")
            if name in wanted[:i]:
                raise InvalidArgument(f"outputs[{i}].name: {quoted(name)} asked for twice")
        size = rows * sum(model.output_bytes[name] for name in wanted) + len(request.id.encode()) + ENVELOPE
        if size > self.settings.max_message_bytes:
            raise AnswerTooLarge(f"outputs: the answer would be {size:,} bytes, over the message limit of "
                            f"{self.settings.max_message_bytes:,}; ask for fewer rows or outputs")
        return wanted

    def _inputs(self, model: LoadedModel, request) -> np.ndarray:
        """The request's inputs as the model's rows, after every check the genserve.v1 API
        makes: each input once, by name, in any order; raw bytes for all or none."""
        nodes = model.session.get_inputs()
        names = ", ".join(repr(node.name) for node in nodes)
        if len(request.inputs) != len(nodes):
            raise InvalidArgument(f"inputs: {model.name} takes {len(nodes)} input{'s' * (len(nodes) > 1)}, "
                                  f"{names}; got {len(request.inputs)}")
        if request.raw_input_contents and len(request.raw_input_contents) != len(nodes):
            raise InvalidArgument(f"raw_input_contents: one entry per input ({len(nodes)}), got "
                                  f"{len(request.raw_input_contents)}")
        given: dict[str, int] = {}
        for i, tensor in enumerate(request.inputs):
            if tensor.name not in model.input_names:
                raise InvalidArgument(f"inputs[{i}].name: {model.name} takes {names}, got {quoted(tensor.name)}")
            if tensor.name in given:
                raise InvalidArgument(f"inputs[{i}].name: {quoted(tensor.name)} given twice")
            given[tensor.name] = i
        arrays = [self._input(model, request, given[node.name], node) for node in nodes]
        rows = {len(a) for a in arrays}
        if len(rows) > 1:
            raise InvalidArgument(f"inputs: every input needs the same batch size, got "
                                  f"{', '.join(str(len(a)) for a in arrays)}")
        return model.rows(*arrays)

    def _input(self, model: LoadedModel, request, i: int, node) -> np.ndarray:
        tensor = request.inputs[i]
        field = f"inputs[{i}]"
        datatype, contents, dtype = DATATYPES[node.type]
        if tensor.datatype != datatype:
            raise InvalidArgument(f"{field}.datatype: {node.name} is {datatype}, got {quoted(tensor.datatype)}")
        item_shape = [int(d) for d in node.shape[1:]]
        if len(tensor.shape) > MAX_RANK:
            raise InvalidArgument(f"{field}.shape: {len(tensor.shape):,} axes; {node.name} has "
                                  f"{1 + len(item_shape)}")
        shape = list(tensor.shape)
        if len(shape) != 1 + len(item_shape) or shape[1:] != item_shape or shape[0] < 1:
            raise InvalidArgument(f"{field}.shape: must be [{','.join(['N', *map(str, item_shape)])}] with N >= 1, "
                                  f"got {shape}")
        if shape[0] > self.settings.max_request_size:
            raise InvalidArgument(f"{field}.shape: batch of {shape[0]} exceeds the maximum of "
                                  f"{self.settings.max_request_size}")
        count = int(np.prod(shape))
        itemsize = np.dtype(dtype).itemsize
        if request.raw_input_contents:
            if tensor.HasField("contents"):
                raise InvalidArgument(f"{field}.contents: not allowed together with raw_input_contents")
            raw = request.raw_input_contents[i]
            if len(raw) != count * itemsize:
                raise InvalidArgument(f"raw_input_contents[{i}]: {len(raw)} bytes, but shape {shape} of "
                                      f"{datatype} needs {count * itemsize}")
            array = np.frombuffer(raw, dtype)
        else:
            values = getattr(tensor.contents, contents)
            if len(values) != count:
                raise InvalidArgument(f"{field}.contents.{contents}: {len(values)} values, but shape "
                                      f"{shape} needs {count}")
            array = np.asarray(values, dtype)
        _check_values(model, node.name, array, f"{field} ({node.name})")
        return np.ascontiguousarray(array.reshape(shape), dtype[1:])


def _check_values(model: LoadedModel, name: str, array: np.ndarray, where: str) -> None:
    """The checks genserve.v1 makes of the same tensor: pixels, digits, latents."""
    spec = next((s for s in model.contract.inputs if s.name == name), None) if model.contract else None
    if array.dtype.kind == "i":
        if spec is not None and len(array) and (array.min() < spec.low or array.max() > spec.high):
            bad = array[(array < spec.low) | (array > spec.high)][0]
            raise InvalidArgument(f"{where}: values must lie in [{spec.low:g}, {spec.high:g}], got {bad}")
        return
    pixels = spec is not None and (spec.low, spec.high) == (0.0, 1.0)
    (check_pixels if pixels else check_latents)(array, where)


def _metadata(node) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=node.name, datatype=DATATYPES[node.type][0], shape=[d if isinstance(d, int) else -1 for d in node.shape])
