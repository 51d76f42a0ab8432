"""genserve.v1.GenerativeService: validate, convert, delegate to the engine."""

from __future__ import annotations

import contextvars
import functools
import time

from google.protobuf import json_format, struct_pb2

from genserve.codec import to_tensor
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc

from .engine import SAMPLERS, Engine, LoadedModel, fresh_seed
from .errors import InvalidArgument, ModelNotFound, NotReady, quoted
from .settings import Settings
from .tensors import image_format, images_from_proto, images_to_proto, latents_from_proto

# The model a request ran on, for the interceptor's metrics labels.
current_model: contextvars.ContextVar[str] = contextvars.ContextVar("current_model", default="")
current_version: contextvars.ContextVar[int] = contextvars.ContextVar("current_version", default=0)


class GenerativeServicer(pb_grpc.GenerativeServiceServicer):
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.ready = False

    def _resolve(self, name: str, version: int) -> LoadedModel:
        """The model version this call runs on, fixed now: a reload during the call does
        not change it. Refuses until every model is loaded."""
        if not self.ready:
            raise NotReady("the server is loading its models; retry when health reports SERVING")
        if version < 0:
            raise InvalidArgument(f"version: must be >= 0 (0: the newest), got {version}")
        current_model.set(name)
        model = self.engine.model(name, version)
        current_version.set(model.version.version)
        return model


    async def Encode(self, request, context):
        images = images_from_proto(request.images, "images", self.settings.max_request_size)
        model = self._resolve("vae_encoder", request.version)
        seed = request.seed if request.HasField("seed") else fresh_seed()
        mean, log_var, z = await self.engine.encode(model, images, seed, deadline(context))
        return pb.EncodeResponse(z_mean=to_tensor(mean), z_log_var=to_tensor(log_var),
                                 z=to_tensor(z), model=_ref(model))

    async def Decode(self, request, context):
        z = latents_from_proto(request.z, "z", self.settings.max_request_size)
        fmt = image_format(request.image_format)
        model = self._resolve("vae_decoder", request.version)
        images = await self.engine.decode(model, z, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(images, fmt), model=_ref(model))

    async def Sample(self, request, context):
        sampler = request.model or "gan"
        if sampler not in SAMPLERS:
            raise ModelNotFound(f"model: unknown sampler {quoted(sampler)}; use one of {', '.join(SAMPLERS)}")
        if not 1 <= request.n <= self.settings.max_sample_n:
            raise InvalidArgument(f"n: must be between 1 and {self.settings.max_sample_n}, got {request.n}")
        fmt = image_format(request.image_format)
        seed = request.seed if request.HasField("seed") else fresh_seed()
        model = self._resolve(SAMPLERS[sampler], request.version)
        images = await self.engine.sample(model, request.n, seed, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(images, fmt), model=_ref(model), seed=seed)

    async def Denoise(self, request, context):
        images = images_from_proto(request.images, "images", self.settings.max_request_size)
        fmt = image_format(request.image_format)
        model = self._resolve("dae", request.version)
        denoised = await self.engine.denoise(model, images, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(denoised, fmt), model=_ref(model))

    async def ListModels(self, request, context):
        models = []
        served = [m for name in sorted(self.engine.served)
                  for _, m in sorted(self.engine.served[name].items(), reverse=True)]
        for model in served:  # newest version of each model first
            manifest = model.version.manifest
            metrics = struct_pb2.Struct()
            json_format.ParseDict(manifest.get("metrics", {}), metrics)
            models.append(pb.ModelInfo(
                name=model.name, version=model.version.version, execution_provider=model.provider,
                sha256=manifest["sha256"], metrics=metrics,
                inputs=[_tensor_info(t) for t in manifest.get("inputs", [])],
                outputs=[_tensor_info(t) for t in manifest.get("outputs", [])]))
        return pb.ListModelsResponse(models=models)


def _ref(model: LoadedModel) -> pb.ModelRef:
    return _model_ref(model.name, model.version.version)


@functools.lru_cache(maxsize=256)
def _model_ref(name: str, version: int) -> pb.ModelRef:
    # Shared by the responses, which copy it in.
    return pb.ModelRef(name=name, version=version)


def deadline(context) -> float | None:
    """The call's deadline on the time.monotonic() clock, for the batching queue."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _tensor_info(spec: dict) -> pb.TensorInfo:
    return pb.TensorInfo(name=spec["name"], dtype=spec["dtype"], shape=[str(d) for d in spec["shape"]],
                         description=spec.get("description", ""))
