"""genserve.v1.GenerativeService: validate, convert, delegate to the engine."""

from __future__ import annotations

import contextvars
import functools
import math
import time

import numpy as np
from google.protobuf import json_format, struct_pb2

from genserve.codec import to_tensor
from genserve.contract import CONTRACTS
from genserve.latents import grid, lerp, slerp
from genserve.v1 import generative_pb2 as pb
from genserve.v1 import generative_pb2_grpc as pb_grpc

from .engine import Engine, LoadedModel, fresh_seed, seed_latents
from .errors import InvalidArgument, ModelNotFound, NotReady, quoted
from .settings import Settings
from .tensors import (MAX_LATENT, digit, digits, image_format, image_from_proto, images_from_proto,
                      images_to_proto, latent_from_proto, latents_from_proto)

# genserve.v1's model names: the repository model drawn without a digit, and with one.
FAMILIES = {"gan": ("gan_generator", "cgan_generator"), "vae": ("vae_decoder", "cvae_decoder"),
            "cgan": (None, "cgan_generator"), "cvae": (None, "cvae_decoder")}
ENCODERS = {"vae_decoder": "vae_encoder", "cvae_decoder": "cvae_encoder"}
GRID_SIZES = (2, 64)
DEFAULT_SPAN = 3.0

# The model a request ran on, for the interceptor's metrics labels.
current_model: contextvars.ContextVar[str] = contextvars.ContextVar("current_model", default="")
current_version: contextvars.ContextVar[int] = contextvars.ContextVar("current_version", default=0)


class GenerativeServicer(pb_grpc.GenerativeServiceServicer):
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.ready = False

    def _resolve(self, name: str, version: int = 0) -> LoadedModel:
        """The model version this call runs on, fixed now: a reload during the call does
        not change it. Refuses until every model is loaded, and with FAILED_PRECONDITION
        when the repository lacks the model in the role the call needs."""
        if not self.ready:
            raise NotReady("the server is loading its models; retry when health reports SERVING")
        if version < 0:
            raise InvalidArgument(f"version: must be >= 0 (0: the newest), got {version}")
        current_model.set(name)
        model = self.engine.model(name, version, role=CONTRACTS[name].role)
        current_version.set(model.version.version)
        return model

    def _family(self, family: str, default: str, conditional: bool) -> str:
        """The repository model a genserve.v1 model name means, with a digit or without."""
        family = family or default
        if family not in FAMILIES:
            raise ModelNotFound(f"model: unknown sampler {quoted(family)}; use one of {', '.join(FAMILIES)}")
        plain, with_digit = FAMILIES[family]
        if not conditional and plain is None:
            raise InvalidArgument(f"digit: required: {family} draws the digit it is given")
        return with_digit if conditional else plain


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
        if not 1 <= request.n <= self.settings.max_sample_n:
            raise InvalidArgument(f"n: must be between 1 and {self.settings.max_sample_n}, got {request.n}")
        if request.HasField("digit") and request.digits:
            raise InvalidArgument("digits: not together with digit; give one or the other")
        wanted = (np.full(request.n, digit(request.digit, "digit"), np.int64) if request.HasField("digit")
                  else digits(request.digits, "digits", request.n) if request.digits else None)
        name = self._family(request.model, "gan", wanted is not None)
        fmt = image_format(request.image_format)
        seed = request.seed if request.HasField("seed") else fresh_seed()
        model = self._resolve(name, request.version)
        images, latents = await self.engine.sample(model, request.n, seed, deadline(context), wanted)
        response = pb.ImagesResponse(images=images_to_proto(images, fmt), model=_ref(model), seed=seed)
        if request.return_latents:
            response.latents.CopyFrom(to_tensor(latents))
        return response

    async def Interpolate(self, request, context):
        drawn = digit(request.digit, "digit") if request.HasField("digit") else None
        name = self._family(request.model, "vae", drawn is not None)
        if not 2 <= request.steps <= self.settings.max_request_size:
            raise InvalidArgument(f"steps: must be between 2 and {self.settings.max_request_size}, "
                                  f"got {request.steps}")
        fmt = image_format(request.image_format)
        model = self._resolve(name)
        start = await self._endpoint(request.start, "start", model, drawn, context)
        end = await self._endpoint(request.end, "end", model, drawn, context)
        gan = name.endswith("gan_generator")
        frames = (slerp if gan else lerp)(start, end, request.steps)
        labels = None if drawn is None else np.full(request.steps, drawn, np.int64)
        images = await self.engine.generate(model, frames, labels, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(images, fmt), model=_ref(model))

    async def _endpoint(self, point: pb.Endpoint, field: str, model: LoadedModel, drawn: int | None,
                        context) -> np.ndarray:
        """One end of an interpolation as a latent vector of ``model``."""
        kind = point.WhichOneof("point")
        size = model.contract.inputs[0].item_shape[0]
        if kind is None:
            raise InvalidArgument(f"{field}: required: an image, a latent [{size}] or a seed")
        if kind == "seed":
            return seed_latents(model, point.seed, 1)[0]
        if kind == "latent":
            return latent_from_proto(point.latent, f"{field}.latent", size)
        if model.name not in ENCODERS:
            raise InvalidArgument(f"{field}.image: {model.name} has no encoder; give a latent [{size}] or a seed")
        image = image_from_proto(point.image, f"{field}.image")
        encoder = self._resolve(ENCODERS[model.name])
        labels = None if drawn is None else np.full(1, drawn, np.int64)
        return (await self.engine.encode_means(encoder, image, labels, deadline(context)))[0]

    async def LatentGrid(self, request, context):
        low, high = GRID_SIZES
        if not low <= request.size <= high:
            raise InvalidArgument(f"size: must be between {low} and {high}, got {request.size}")
        span = request.span if request.HasField("span") else DEFAULT_SPAN
        if not (math.isfinite(span) and 0 < span <= MAX_LATENT):
            raise InvalidArgument(f"span: must be finite, > 0 and <= {MAX_LATENT:g}, got {span}")
        drawn = digit(request.digit, "digit") if request.HasField("digit") else None
        fmt = image_format(request.image_format)
        model = self._resolve(self._family("vae", "vae", drawn is not None))
        z = grid(request.size, span)
        labels = None if drawn is None else np.full(len(z), drawn, np.int64)
        images = await self.engine.generate(model, z, labels, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(images, fmt), model=_ref(model))

    async def Reconstruct(self, request, context):
        images = images_from_proto(request.images, "images", self.settings.max_request_size)
        fmt = image_format(request.image_format)
        encoder, decoder = self._resolve("vae_encoder"), self._resolve("vae_decoder")
        means = await self.engine.encode_means(encoder, images, None, deadline(context))
        decoded = await self.engine.generate(decoder, means, None, deadline(context))
        return pb.ImagesResponse(images=images_to_proto(decoded, fmt), model=_ref(decoder))

    async def Restyle(self, request, context):
        images = images_from_proto(request.images, "images", self.settings.max_request_size)
        if not request.HasField("digit"):
            raise InvalidArgument("digit: required: the digit to write, 0-9")
        target = digit(request.digit, "digit")
        fmt = image_format(request.image_format)
        encoder, decoder = self._resolve("cvae_encoder"), self._resolve("cvae_decoder")
        if request.source_digits:
            source = digits(request.source_digits, "source_digits", len(images))
        else:
            classifier = self._resolve("digit_classifier")
            source = (await self.engine.classify(classifier, images, deadline(context))).argmax(1)
        style = await self.engine.encode_means(encoder, images, source, deadline(context))
        written = await self.engine.generate(decoder, style, np.full(len(images), target, np.int64),
                                             deadline(context))
        return pb.ImagesResponse(images=images_to_proto(written, fmt), model=_ref(decoder))

    async def Classify(self, request, context):
        images = images_from_proto(request.images, "images", self.settings.max_request_size)
        model = self._resolve("digit_classifier", request.version)
        probabilities = await self.engine.classify(model, images, deadline(context))
        return pb.ClassifyResponse(probabilities=to_tensor(probabilities),
                                   digits=probabilities.argmax(1).tolist(), model=_ref(model))

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
                name=model.name, version=model.version.version, execution_provider=model.provider, role=model.role,
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
