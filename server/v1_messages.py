"""genserve.v1's request and response messages <-> the service core: one function per
RPC, taking the request message and answering the response message. The gRPC door
and the HTTP door's JSON routes (the same messages in protobuf's JSON mapping) both
call these, so that each RPC is translated once."""

from __future__ import annotations

import functools
from typing import AsyncIterator, Awaitable, Callable

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from genserve.codec import to_tensor
from genserve.contract import LATENT_DIM, NOISE_DIM
from genserve.v1 import generative_pb2 as pb

from .calls import Call
from .service import GRID_SIZES, Answer, Chunk, Endpoint, Service, Stream
from .tensors import (image_format, image_from_proto, images_from_proto, images_to_proto, latent_from_proto,
                      latents_from_proto)

Handler = Callable[[Service, Call, Message], Awaitable[Message]]


def _ref(answer: Answer) -> pb.ModelRef:
    return _model_ref(answer.model, answer.version)


@functools.lru_cache(maxsize=256)
def _model_ref(name: str, version: int) -> pb.ModelRef:
    # Shared by the responses, which copy it in.
    return pb.ModelRef(name=name, version=version)


def _optional(request: Message, field: str):
    return getattr(request, field) if request.HasField(field) else None


def _images(service: Service, request: Message):
    return images_from_proto(request.images, "images", service.settings.max_request_size)


def _images_response(answer: Answer, fmt: int) -> pb.ImagesResponse:
    return pb.ImagesResponse(images=images_to_proto(answer.output, fmt), model=_ref(answer))


async def encode(service: Service, call: Call, request: pb.EncodeRequest) -> pb.EncodeResponse:
    images = _images(service, request)
    answer = await service.encode(call, images, _optional(request, "seed"), request.version)
    encoded = answer.output
    return pb.EncodeResponse(z_mean=to_tensor(encoded.z_mean), z_log_var=to_tensor(encoded.z_log_var),
                             z=to_tensor(encoded.z), model=_ref(answer))


async def decode(service: Service, call: Call, request: pb.DecodeRequest) -> pb.ImagesResponse:
    z = latents_from_proto(request.z, "z", service.settings.max_request_size)
    fmt = image_format(request.image_format)
    return _images_response(await service.decode(call, z, request.version), fmt)


IMAGE_BYTES = {pb.IMAGE_FORMAT_UNSPECIFIED: 784, pb.IMAGE_FORMAT_UINT8: 784, pb.IMAGE_FORMAT_FLOAT32: 4 * 784}
LATENT_BYTES = 4 * max(NOISE_DIM, LATENT_DIM)  # a row of Sample's latents, at most


def _fits(service: Service, rows: int, fmt: int, extra: int = 0) -> None:
    """An answer of ``rows`` images (and ``extra`` bytes a row) within the message limit,
    checked before any run."""
    service.check_answer(rows * (IMAGE_BYTES[fmt] + extra), "images", "ask for fewer images, or uint8 ones")


async def sample(service: Service, call: Call, request: pb.SampleRequest) -> pb.ImagesResponse:
    fmt = image_format(request.image_format)
    if request.n <= service.settings.max_sample_n:
        _fits(service, request.n, fmt, LATENT_BYTES if request.return_latents else 0)
    answer = await service.sample(call, request.n, request.model, _optional(request, "seed"),
                                  _optional(request, "digit"), list(request.digits), request.version,
                                  _optional(request, "truncation"), _optional(request, "min_confidence"))
    response = pb.ImagesResponse(images=images_to_proto(answer.output, fmt), model=_ref(answer), seed=answer.seed,
                                 redrawn=answer.redrawn, unmet=answer.unmet)
    if request.return_latents:
        response.latents.CopyFrom(to_tensor(answer.latents))
    return response


def open_stream(service: Service, call: Call, request: pb.SampleStreamRequest) -> Stream:
    """SampleStream's request checked and its models resolved, before any message."""
    fmt = image_format(request.image_format)
    if request.HasField("chunk") and 1 <= request.chunk <= service.settings.max_request_size:
        _fits(service, request.chunk, fmt)
    return service.open_stream(call, request.n, request.model, _optional(request, "seed"),
                               _optional(request, "digit"), request.balanced, _optional(request, "chunk"),
                               request.start_index, request.version, _optional(request, "truncation"),
                               _optional(request, "min_confidence"))


def sample_chunk(answer: Answer[Chunk], fmt: int) -> pb.SampleChunk:
    chunk = answer.output
    drawn = chunk.drawn
    return pb.SampleChunk(images=images_to_proto(drawn.images, fmt), model=_ref(answer),
                          digits=() if drawn.digits is None else drawn.digits.tolist(),
                          first_index=chunk.first_index, seed=answer.seed, redrawn=drawn.redrawn, unmet=drawn.unmet)


async def sample_stream(service: Service, call: Call, request: pb.SampleStreamRequest
                        ) -> AsyncIterator[pb.SampleChunk]:
    stream = open_stream(service, call, request)
    fmt = image_format(request.image_format)
    async for answer in stream.chunks():
        yield sample_chunk(answer, fmt)


def _endpoint(point: pb.Endpoint, field: str) -> Endpoint:
    kind = point.WhichOneof("point")
    if kind == "seed":
        return Endpoint(seed=point.seed)
    if kind == "latent":
        return Endpoint(latent=lambda size: latent_from_proto(point.latent, f"{field}.latent", size))
    if kind == "image":
        return Endpoint(image=lambda: image_from_proto(point.image, f"{field}.image"))
    return Endpoint()


async def interpolate(service: Service, call: Call, request: pb.InterpolateRequest) -> pb.ImagesResponse:
    fmt = image_format(request.image_format)
    answer = await service.interpolate(call, _endpoint(request.start, "start"), _endpoint(request.end, "end"),
                                       request.steps, request.model, _optional(request, "digit"), request.version)
    return _images_response(answer, fmt)


async def latent_grid(service: Service, call: Call, request: pb.LatentGridRequest) -> pb.ImagesResponse:
    fmt = image_format(request.image_format)
    if request.size <= GRID_SIZES[1]:
        _fits(service, request.size ** 2, fmt)
    answer = await service.latent_grid(call, request.size, _optional(request, "span"), _optional(request, "digit"),
                                       request.version)
    return _images_response(answer, fmt)


async def reconstruct(service: Service, call: Call, request: pb.ReconstructRequest) -> pb.ImagesResponse:
    images = _images(service, request)
    fmt = image_format(request.image_format)
    return _images_response(await service.reconstruct(call, images, request.version), fmt)


async def restyle(service: Service, call: Call, request: pb.RestyleRequest) -> pb.ImagesResponse:
    images = _images(service, request)
    fmt = image_format(request.image_format)
    answer = await service.restyle(call, images, _optional(request, "digit"), list(request.source_digits),
                                   request.version)
    return _images_response(answer, fmt)


async def classify(service: Service, call: Call, request: pb.ClassifyRequest) -> pb.ClassifyResponse:
    images = _images(service, request)
    answer = await service.classify(call, images, request.version)
    return pb.ClassifyResponse(probabilities=to_tensor(answer.output), digits=answer.output.argmax(1).tolist(),
                               model=_ref(answer))


async def denoise(service: Service, call: Call, request: pb.DenoiseRequest) -> pb.ImagesResponse:
    images = _images(service, request)
    fmt = image_format(request.image_format)
    return _images_response(await service.denoise(call, images, request.version), fmt)


async def list_models(service: Service, call: Call, request: pb.ListModelsRequest) -> pb.ListModelsResponse:
    models = []
    for model in service.list_models():
        manifest = model.version.manifest
        metrics = struct_pb2.Struct()
        json_format.ParseDict(manifest.get("metrics", {}), metrics)
        models.append(pb.ModelInfo(
            name=model.name, version=model.version.version, execution_provider=model.provider, role=model.role,
            sha256=manifest["sha256"], metrics=metrics, serving=pb.ServingSettings(**model.serving),
            inputs=[_tensor_info(t) for t in manifest.get("inputs", [])],
            outputs=[_tensor_info(t) for t in manifest.get("outputs", [])]))
    return pb.ListModelsResponse(models=models)


def _tensor_info(spec: dict) -> pb.TensorInfo:
    return pb.TensorInfo(name=spec["name"], dtype=spec["dtype"], shape=[str(d) for d in spec["shape"]],
                         description=spec.get("description", ""))


# Every RPC of genserve.v1.GenerativeService, by its name in the service.
RPCS: dict[str, Handler] = {
    "Encode": encode, "Decode": decode, "Sample": sample, "Denoise": denoise, "ListModels": list_models,
    "Interpolate": interpolate, "LatentGrid": latent_grid, "Reconstruct": reconstruct, "Restyle": restyle,
    "Classify": classify,
}
# genserve.v1's server-streaming RPCs.
STREAMS = {"SampleStream": sample_stream}
