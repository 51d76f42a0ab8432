"""The service core: every operation genserve offers (genserve.v1's and the Open
Inference Protocol's) as methods over numpy arrays and domain types, whatever door the
call came by. Each takes the call (``calls.Call``: deadline, request id, the model that
answers) and returns its output with the model version that produced it. Knows
nothing of protobuf, gRPC or HTTP; validation of values lives here, once.
"""

from __future__ import annotations

import asyncio
import collections
import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as package_version
from typing import AsyncIterator, Callable, Generic, Sequence, TypeVar

import numpy as np

from genserve.contract import CONTRACTS, DIGITS, ONNX_TYPES
from genserve.latents import grid, lerp, slerp
from genserve.repository import parse_version

from .calls import Call
from .engine import SAMPLERS, Engine, LoadedModel, TensorInfo, fresh_seed, seed_latents
from .errors import TooLarge, InvalidArgument, ModelNotFound, NotReady, quoted
from .metrics import Metrics
from .model_control import IndexEntry, ModelControl
from .pixels import Images
from .sampling import MAX_DRAWS, Controls, latents as drawn_latents, span
from .settings import Settings
from .tensors import MAX_LATENT, MAX_RANK, check_latents, check_pixels

T = TypeVar("T")

# genserve.v1's model names: the repository model drawn without a digit, and with one.
FAMILIES = {"gan": ("gan_generator", "cgan_generator"), "vae": ("vae_decoder", "cvae_decoder"),
            "cgan": (None, "cgan_generator"), "cvae": (None, "cvae_decoder")}
ENCODERS = {"vae_decoder": "vae_encoder", "cvae_decoder": "cvae_encoder"}
GRID_SIZES = (2, 64)
DEFAULT_SPAN = 3.0

# The Open Inference Protocol's datatypes of the tensors genserve serves: onnxruntime's
# type -> (datatype, numpy's little-endian dtype).
DATATYPES = {ONNX_TYPES["float32"]: ("FP32", np.dtype("<f4")), ONNX_TYPES["int64"]: ("INT64", np.dtype("<i8"))}
PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX models on onnxruntime
MAX_ID = 256  # characters of an inference request's id, which the answer repeats
ENVELOPE = 64 * 1024  # room in an answer for all but its tensors' bytes
DEFAULT_CHUNK = 256  # images per SampleStream message unless asked
# Chunks of a stream computed beyond the one being written: the most a slow reader
# makes the server hold, beside what the transport's flow-control window holds.
AHEAD = 2


@dataclass
class Answer(Generic[T]):
    """An operation's output and the model version that produced it (the label rule of
    ``calls.Call``); a sampling operation's seed and latents beside it."""
    output: T
    model: str
    version: int
    seed: int | None = None
    latents: np.ndarray | None = None
    redrawn: int = 0  # images redrawn under min_confidence
    unmet: int = 0  # of those, images still short of it after the last redraw


@dataclass(frozen=True)
class Drawn:
    """Images drawn from a seed under the sampling controls, with their latents and
    digits (asked for, or the classifier's reading; None: neither)."""
    images: Images
    latents: np.ndarray
    digits: np.ndarray | None
    redrawn: int
    unmet: int


@dataclass(frozen=True)
class Chunk:
    """One message of a stream: images from ``first_index`` on."""
    first_index: int
    drawn: Drawn


class Stream:
    """A SampleStream call, checked and resolved: ``chunks()`` draws its messages,
    computing at most AHEAD chunks beyond the one the caller is taking."""

    def __init__(self, service: "Service", call: Call, model: LoadedModel, classifier: LoadedModel | None,
                 n: int, seed: int, digits: Callable[[int, int], np.ndarray | None], chunk: int, start: int,
                 controls: Controls):
        self.service, self.call, self.model, self.classifier = service, call, model, classifier
        self.n, self.seed, self.digits, self.chunk, self.start, self.controls = n, seed, digits, chunk, start, controls

    async def _draw(self, first: int) -> Answer[Chunk]:
        count = min(self.chunk, self.n - first)
        drawn = await self.service._draw(self.call, self.model, self.classifier, self.seed, first, count,
                                         self.digits(first, count), self.controls, background=True)
        return Answer(Chunk(first, drawn), self.model.name, self.model.version.version, seed=self.seed,
                      redrawn=drawn.redrawn, unmet=drawn.unmet)

    async def chunks(self) -> AsyncIterator[Answer[Chunk]]:
        starts = iter(range(self.start, self.n, self.chunk))
        pending: collections.deque[asyncio.Task] = collections.deque()
        try:
            while True:
                for first in starts:
                    pending.append(asyncio.ensure_future(self._draw(first)))
                    if len(pending) > AHEAD:
                        break
                if not pending:
                    return
                yield await pending.popleft()
        finally:  # the caller went away or the stream failed: what is not yet run never runs
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


@dataclass(frozen=True)
class Encoded:
    z_mean: np.ndarray  # float32 [N,2]
    z_log_var: np.ndarray
    z: np.ndarray  # one draw from the posterior


@dataclass(frozen=True)
class Endpoint:
    """One end of an interpolation: a seed, a latent vector or an image (none: refused).
    The door decodes a latent once the model's latent size is known, and an image once
    the model is known to have an encoder."""
    seed: int | None = None
    latent: Callable[[int], np.ndarray] | None = None  # size -> float32 [size]
    image: Callable[[], np.ndarray] | None = None  # -> float32 [1,1,28,28] in [0, 1]


@dataclass(frozen=True)
class InferInput:
    """One Open Inference Protocol input as the request states it; ``data`` is its raw
    little-endian bytes, or its values already in the stated datatype (flat).
    ``data_field`` names where the data came from, for messages."""
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes | np.ndarray
    data_field: str


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for the batch axis


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: tuple[str, ...]  # newest first
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]


def server_version() -> str:
    try:
        return package_version("genserve")
    except PackageNotFoundError:
        return "unknown"


class Service:
    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics):
        self.engine = engine
        self.settings = settings
        self.control = ModelControl(engine, settings, metrics)
        self.ready = False  # every model loaded: calls are taken

    # -- resolving models

    def _resolve(self, call: Call, name: str, version: int = 0, answers: bool = True) -> LoadedModel:
        """The model version this call runs on, fixed now: a reload during the call does
        not change it. Refuses until every model is loaded, and with FAILED_PRECONDITION
        when the repository lacks the model in the role the call needs. ``answers``: its
        output is the call's answer (the label rule)."""
        if not self.ready:
            raise NotReady("the server is loading its models; retry when health reports SERVING")
        if version < 0:
            raise InvalidArgument(f"version: must be >= 0 (0: the newest), got {version}")
        model = self.engine.model(name, version, role=CONTRACTS[name].role)
        if answers:
            call.answered_by(name, model.version.version)
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

    def answering_model(self, call: Call, family: str, default: str, conditional: bool, version: int
                        ) -> LoadedModel:
        """The model version a call drawing from ``family`` (a genserve.v1 model name, or
        ``default`` when empty) would run on, resolved as the call itself would resolve it,
        and the call labelled with it (an answer from a cache is still that model's)."""
        return self._resolve(call, self._family(family, default, conditional), version)

    def check_batch(self, rows: int, field: str) -> None:
        if rows > self.settings.max_request_size:
            raise InvalidArgument(f"{field}: batch of {rows} exceeds the maximum of {self.settings.max_request_size}")

    def check_answer(self, tensor_bytes: int, field: str, advice: str) -> None:
        """TooLarge, before any run, where an answer's tensors of ``tensor_bytes`` would not
        fit the message limit."""
        size = tensor_bytes + ENVELOPE
        if size > self.settings.max_message_bytes:
            raise TooLarge(f"{field}: the answer would be {size:,} bytes, over the message limit of "
                           f"{self.settings.max_message_bytes:,}; {advice}")

    @staticmethod
    def _answer(output: T, model: LoadedModel, **extra) -> Answer[T]:
        return Answer(output, model.name, model.version.version, **extra)

    # -- genserve.v1

    async def encode(self, call: Call, images: np.ndarray, seed: int | None = None, version: int = 0
                     ) -> Answer[Encoded]:
        """Images float32 [N,1,28,28] in [0,1] -> the VAE encoder's posterior and one draw from it."""
        model = self._resolve(call, "vae_encoder", version)
        seed = fresh_seed() if seed is None else seed
        mean, log_var, z = await self.engine.encode(model, images, seed, call.deadline)
        return self._answer(Encoded(mean, log_var, z), model)

    async def decode(self, call: Call, z: np.ndarray, version: int = 0) -> Answer[Images]:
        model = self._resolve(call, "vae_decoder", version)
        return self._answer(await self.engine.decode(model, z, call.deadline), model)

    async def sample(self, call: Call, n: int, model: str = "", seed: int | None = None, digit: int | None = None,
                     digits: Sequence[int] | None = None, version: int = 0, truncation: float | None = None,
                     min_confidence: float | None = None) -> Answer[Images]:
        """``n`` images from the GAN or the VAE's prior (their conditional twins given a
        digit, or n digits) under the sampling controls; the answer carries the seed, the
        latents drawn and the redraws. They are the first n images of SampleStream's."""
        if not 1 <= n <= self.settings.max_sample_n:
            raise InvalidArgument(f"n: must be between 1 and {self.settings.max_sample_n}, got {n}")
        if digit is not None and digits:
            raise InvalidArgument("digits: not together with digit; give one or the other")
        controls = Controls(truncation, min_confidence)
        wanted = (np.full(n, check_digit(digit, "digit"), np.int64) if digit is not None
                  else check_digits(digits, "digits", n) if digits else None)
        name = self._family(model, "gan", wanted is not None)
        seed = fresh_seed() if seed is None else seed
        resolved = self._resolve(call, name, version)
        classifier = self._classifier(call, controls)
        drawn = await self._draw(call, resolved, classifier, seed, 0, n, wanted, controls)
        return self._answer(drawn.images, resolved, seed=seed, latents=drawn.latents, redrawn=drawn.redrawn,
                            unmet=drawn.unmet)

    def open_stream(self, call: Call, n: int, model: str = "", seed: int | None = None, digit: int | None = None,
                    balanced: bool = False, chunk: int | None = None, start_index: int = 0, version: int = 0,
                    truncation: float | None = None, min_confidence: float | None = None) -> Stream:
        """A SampleStream call, every argument checked and its models resolved before any
        message: image i is the image Sample would draw at index i for the same seed,
        model version, digits and controls."""
        limit = self.settings.max_stream_n
        if not 1 <= n <= limit:
            raise InvalidArgument(f"n: must be between 1 and {limit:,}, got {n:,}")
        chunk = DEFAULT_CHUNK if chunk is None else chunk
        if not 1 <= chunk <= self.settings.max_request_size:
            raise InvalidArgument(f"chunk: must be between 1 and {self.settings.max_request_size}, got {chunk}")
        if not 0 <= start_index < n:
            raise InvalidArgument(f"start_index: must be between 0 and n - 1 = {n - 1:,}, got {start_index:,}")
        if digit is not None and balanced:
            raise InvalidArgument("balanced: not together with digit; give one or the other")
        controls = Controls(truncation, min_confidence)
        digits: Callable[[int, int], np.ndarray | None]
        if digit is not None:
            fixed = check_digit(digit, "digit")
            digits = lambda first, count: np.full(count, fixed, np.int64)  # noqa: E731
        elif balanced:
            digits = lambda first, count: np.arange(first, first + count, dtype=np.int64) % DIGITS  # noqa: E731
        else:
            digits = lambda first, count: None  # noqa: E731
        name = self._family(model, "gan", digit is not None or balanced)
        resolved = self._resolve(call, name, version)
        classifier = self._classifier(call, controls)
        return Stream(self, call, resolved, classifier, n, fresh_seed() if seed is None else seed, digits, chunk,
                      start_index, controls)

    def _classifier(self, call: Call, controls: Controls) -> LoadedModel | None:
        """The digit classifier that min_confidence needs (its newest version)."""
        if controls.min_confidence is None:
            return None
        return self._resolve(call, "digit_classifier", answers=False)

    async def _draw(self, call: Call, model: LoadedModel, classifier: LoadedModel | None, seed: int, start: int,
                    count: int, wanted: np.ndarray | None, controls: Controls, background: bool = False) -> Drawn:
        """Images [start, start + count) of ``seed`` (``sampling`` keys them); under
        min_confidence, those the classifier refuses are redrawn, each from its own next draw."""
        size, gan = model.contract.inputs[0].item_shape[0], model.role in SAMPLERS
        z = span(seed, start, count, size, gan, controls.truncation)
        images = await self.engine.generate(model, z, wanted, call.deadline, background)
        if classifier is None:
            return Drawn(images, z, wanted, 0, 0)
        floats, pixels, z = images.floats.copy(), images.pixels.copy(), z.copy()
        read = await self.engine.classify(classifier, floats, call.deadline, background)
        failing = _refused(read, wanted, controls.min_confidence)
        redrawn = int(failing.sum())
        for draw in range(1, MAX_DRAWS):
            rows = np.flatnonzero(failing)
            if not len(rows):
                break
            again = drawn_latents(seed, start + rows, size, gan, controls.truncation, draw)
            asked = None if wanted is None else wanted[rows]
            redraw = await self.engine.generate(model, again, asked, call.deadline, background)
            floats[rows], pixels[rows], z[rows] = redraw.floats, redraw.pixels, again
            read[rows] = await self.engine.classify(classifier, redraw.floats, call.deadline, background)
            failing[rows] = _refused(read[rows], asked, controls.min_confidence)
        digits = wanted if wanted is not None else read.argmax(1).astype(np.int64)
        return Drawn(Images(floats, pixels), z, digits, redrawn, int(failing.sum()))

    async def interpolate(self, call: Call, start: Endpoint, end: Endpoint, steps: int, model: str = "",
                          digit: int | None = None, version: int = 0) -> Answer[Images]:
        """``steps`` frames from ``start`` to ``end``: linear in the VAE's z, spherical in
        the GAN's noise. ``version`` pins the sampler or decoder and the encoder paired with it."""
        drawn = check_digit(digit, "digit") if digit is not None else None
        name = self._family(model, "vae", drawn is not None)
        if not 2 <= steps <= self.settings.max_request_size:
            raise InvalidArgument(f"steps: must be between 2 and {self.settings.max_request_size}, got {steps}")
        resolved = self._resolve(call, name, version)
        first = await self._endpoint(call, start, "start", resolved, drawn, version)
        last = await self._endpoint(call, end, "end", resolved, drawn, version)
        frames = (slerp if name.endswith("gan_generator") else lerp)(first, last, steps)
        labels = None if drawn is None else np.full(steps, drawn, np.int64)
        return self._answer(await self.engine.generate(resolved, frames, labels, call.deadline), resolved)

    async def _endpoint(self, call: Call, point: Endpoint, field: str, model: LoadedModel, drawn: int | None,
                        version: int) -> np.ndarray:
        """One end of an interpolation as a latent vector of ``model``."""
        size = model.contract.inputs[0].item_shape[0]
        if point.seed is not None:
            return seed_latents(model, point.seed, 1)[0]
        if point.latent is not None:
            return point.latent(size)
        if point.image is None:
            raise InvalidArgument(f"{field}: required: an image, a latent [{size}] or a seed")
        if model.name not in ENCODERS:
            raise InvalidArgument(f"{field}.image: {model.name} has no encoder; give a latent [{size}] or a seed")
        image = point.image()
        encoder = self._resolve(call, ENCODERS[model.name], version, answers=False)
        labels = None if drawn is None else np.full(1, drawn, np.int64)
        return (await self.engine.encode_means(encoder, image, labels, call.deadline))[0]

    async def latent_grid(self, call: Call, size: int, span: float | None = None, digit: int | None = None,
                          version: int = 0) -> Answer[Images]:
        low, high = GRID_SIZES
        if not low <= size <= high:
            raise InvalidArgument(f"size: must be between {low} and {high}, got {size}")
        span = DEFAULT_SPAN if span is None else span
        if not (math.isfinite(span) and 0 < span <= MAX_LATENT):
            raise InvalidArgument(f"span: must be finite, > 0 and <= {MAX_LATENT:g}, got {span}")
        drawn = check_digit(digit, "digit") if digit is not None else None
        model = self._resolve(call, self._family("vae", "vae", drawn is not None), version)
        z = grid(size, span)
        labels = None if drawn is None else np.full(len(z), drawn, np.int64)
        return self._answer(await self.engine.generate(model, z, labels, call.deadline), model)

    async def reconstruct(self, call: Call, images: np.ndarray, version: int = 0) -> Answer[Images]:
        """The VAE decoder's image of each image's posterior mean; ``version`` pins both."""
        encoder = self._resolve(call, "vae_encoder", version, answers=False)
        decoder = self._resolve(call, "vae_decoder", version)
        means = await self.engine.encode_means(encoder, images, None, call.deadline)
        return self._answer(await self.engine.generate(decoder, means, None, call.deadline), decoder)

    async def restyle(self, call: Call, images: np.ndarray, digit: int | None,
                      source_digits: Sequence[int] | None = None, version: int = 0) -> Answer[Images]:
        """The same handwriting written as ``digit`` through the cVAE (``version`` pins its
        encoder and decoder); each image's own digit as given, or the classifier's reading."""
        if digit is None:
            raise InvalidArgument("digit: required: the digit to write, 0-9")
        target = check_digit(digit, "digit")
        encoder = self._resolve(call, "cvae_encoder", version, answers=False)
        decoder = self._resolve(call, "cvae_decoder", version)
        if source_digits:
            source = check_digits(source_digits, "source_digits", len(images))
        else:
            classifier = self._resolve(call, "digit_classifier", answers=False)
            source = (await self.engine.classify(classifier, images, call.deadline)).argmax(1)
        style = await self.engine.encode_means(encoder, images, source, call.deadline)
        written = await self.engine.generate(decoder, style, np.full(len(images), target, np.int64), call.deadline)
        return self._answer(written, decoder)

    async def classify(self, call: Call, images: np.ndarray, version: int = 0) -> Answer[np.ndarray]:
        """P(digit | image), float32 [N,10]."""
        model = self._resolve(call, "digit_classifier", version)
        return self._answer(await self.engine.classify(model, images, call.deadline), model)

    async def denoise(self, call: Call, images: np.ndarray, version: int = 0) -> Answer[Images]:
        model = self._resolve(call, "dae", version)
        return self._answer(await self.engine.denoise(model, images, call.deadline), model)

    def list_models(self) -> list[LoadedModel]:
        """Every served model version: by name, the newest version of each first."""
        return [m for name in sorted(self.engine.served)
                for _, m in sorted(self.engine.served[name].items(), reverse=True)]

    # -- the Open Inference Protocol

    def _model(self, call: Call, name: str, version: str, field: str) -> LoadedModel:
        if not self.ready:
            raise NotReady("the server is loading its models; retry when ServerReady is true")
        models = self.engine.models
        if not name:
            raise InvalidArgument(f"{field}: required; one of {', '.join(sorted(models))}")
        if name not in models:
            raise ModelNotFound(f"{field}: unknown model {quoted(name)}; this server has {', '.join(sorted(models))}")
        number = parse_version(version) if version else 0
        if number is None:
            raise ModelNotFound(f"{name}: version {quoted(version)} is not served; versions are positive "
                                "integers in ASCII digits")
        model = self.engine.model(name, number)
        call.answered_by(name, model.version.version)
        return model

    def statistics(self, call: Call, name: str = "", version: str = "") -> list[tuple[str, int, dict]]:
        """(model, version, Triton's statistics) of every served version of ``name`` (every
        model when empty), or of the one ``version``."""
        served = self.engine.served
        if not name:
            if version:
                raise InvalidArgument("version: give a model name with a version")
            return [(n, v, served[n][v].statistics.snapshot()) for n in sorted(served) for v in sorted(served[n])]
        if name not in served:
            raise ModelNotFound(f"name: unknown model {quoted(name)}; this server serves "
                                f"{', '.join(sorted(served)) or 'none'}")
        if not version:
            return [(name, v, served[name][v].statistics.snapshot()) for v in sorted(served[name])]
        number = parse_version(version)
        if number not in served[name]:
            raise ModelNotFound(f"version: {name} version {quoted(version)} is not served; it serves "
                                f"{', '.join(str(v) for v in sorted(served[name]))}")
        return [(name, number, served[name][number].statistics.snapshot())]

    async def repository_index(self, call: Call, ready_only: bool = False) -> list[IndexEntry]:
        return await self.control.index(ready_only)

    async def load_model(self, call: Call, name: str) -> None:
        """Loads ``name`` (explicit model control), answering once it serves."""
        if not name:
            raise InvalidArgument("model_name: required")
        await self.control.load(name)
        call.answered_by(name, self.engine.models[name].version.version)

    async def unload_model(self, call: Call, name: str) -> None:
        if not name:
            raise InvalidArgument("model_name: required")
        await self.control.unload(name)

    def model_ready(self, name: str, version: str) -> bool:
        versions = self.engine.served.get(name, {})
        return self.ready and bool(versions) and (version == "" or parse_version(version) in versions)

    def model_metadata(self, call: Call, name: str, version: str) -> ModelMetadata:
        model = self._model(call, name, version, "name")
        return ModelMetadata(
            name=model.name, versions=tuple(str(v) for v in sorted(self.engine.served[model.name], reverse=True)),
            platform=PLATFORM, inputs=tuple(_metadata(node) for node in model.session.get_inputs()),
            outputs=tuple(_metadata(node) for node in model.session.get_outputs()))

    async def infer(self, call: Call, name: str, version: str, inputs: Sequence[InferInput],
                    outputs: Sequence[str] = (), request_id: str = "", timeout_us: int | None = None
                    ) -> Answer[list[tuple[str, np.ndarray]]]:
        """The model's own outputs (all, or those named, each once) for the inputs: each
        given once, by name, in any order, after every check genserve.v1 makes of the
        same tensors. An answer over the message limit is refused before the run.
        ``timeout_us``: the protocol's ``timeout`` parameter (microseconds, as Triton's),
        which brings the call's deadline forward."""
        model = self._model(call, name, version, "model_name")
        if len(request_id) > MAX_ID:
            raise InvalidArgument(f"id: {len(request_id):,} characters; at most {MAX_ID}")
        if timeout_us is not None:
            if not 0 < timeout_us < 2**63:
                raise InvalidArgument(f"parameters.timeout: microseconds, a whole number > 0, got {timeout_us}")
            call.limit(timeout_us / 1e6)
        rows = self._inputs(model, inputs)
        wanted = self._outputs(model, outputs, len(rows), len(request_id.encode("utf-8", "surrogatepass")))
        # The model's own outputs, without the pixels genserve.v1 asks the engine for.
        results = await self.engine.infer(model, rows, call.deadline, pixels=False)
        # float32 (checked at load) and C-ordered: a run's or a slice of its rows
        return self._answer([(model.output_names[i], results[i]) for i in wanted], model)

    def _outputs(self, model: LoadedModel, asked: Sequence[str], rows: int, id_bytes: int) -> Sequence[int]:
        """The indices of the outputs asked for (all by default), each once, and only as
        many as an answer within the message limit holds."""
        names = model.output_names
        if not asked:
            wanted: Sequence[int] = range(len(names))
        elif len(asked) > len(names):
            raise InvalidArgument(f"outputs: {len(asked):,} asked for; {model.name} has {len(names)}")
        else:
            wanted = []
            for i, output in enumerate(asked):
                if output not in names:
                    raise InvalidArgument(f"outputs[{i}].name: {model.name} has no output {quoted(output)}; "
                                          f"it has {', '.join(names)}")
                if names.index(output) in wanted:
                    raise InvalidArgument(f"outputs[{i}].name: {quoted(output)} asked for twice")
                wanted.append(names.index(output))
        self.check_answer(rows * sum(model.output_bytes[names[i]] for i in wanted) + id_bytes, "outputs",
                          "ask for fewer rows or outputs")
        return wanted

    def _inputs(self, model: LoadedModel, inputs: Sequence[InferInput]) -> np.ndarray:
        tensors = model.inputs
        if len(inputs) != len(tensors):
            raise InvalidArgument(f"inputs: {model.name} takes {len(tensors)} input{'s' * (len(tensors) > 1)}, "
                                  f"{_names(tensors)}; got {len(inputs)}")
        given: dict[str, int] = {}
        for i, tensor in enumerate(inputs):
            if tensor.name not in model.input_names:
                raise InvalidArgument(f"inputs[{i}].name: {model.name} takes {_names(tensors)}, "
                                      f"got {quoted(tensor.name)}")
            if tensor.name in given:
                raise InvalidArgument(f"inputs[{i}].name: {quoted(tensor.name)} given twice")
            given[tensor.name] = i
        arrays = [self._input(inputs[given[spec.name]], given[spec.name], spec) for spec in tensors]
        if len(arrays) > 1 and len({len(a) for a in arrays}) > 1:
            raise InvalidArgument(f"inputs: every input needs the same batch size, got "
                                  f"{', '.join(str(len(a)) for a in arrays)}")
        return model.rows(*arrays)

    def _input(self, tensor: InferInput, i: int, spec: TensorInfo) -> np.ndarray:
        field = f"inputs[{i}]"
        datatype, dtype = DATATYPES[spec.type]
        if tensor.datatype != datatype:
            raise InvalidArgument(f"{field}.datatype: {spec.name} is {datatype}, got {quoted(tensor.datatype)}")
        if len(tensor.shape) > MAX_RANK:
            raise InvalidArgument(f"{field}.shape: {len(tensor.shape):,} axes; {spec.name} has "
                                  f"{1 + len(spec.item_shape)}")
        shape = tuple(tensor.shape)
        if not shape or shape[1:] != spec.item_shape or shape[0] < 1:
            raise InvalidArgument(f"{field}.shape: must be [{','.join(['N', *map(str, spec.item_shape)])}] with "
                                  f"N >= 1, got {list(shape)}")
        self.check_batch(shape[0], f"{field}.shape")
        count = math.prod(shape)
        if isinstance(tensor.data, (bytes, bytearray, memoryview)):
            if len(tensor.data) != count * dtype.itemsize:
                raise InvalidArgument(f"{tensor.data_field}: {len(tensor.data)} bytes, but shape {list(shape)} of "
                                      f"{datatype} needs {count * dtype.itemsize}")
            array = np.frombuffer(tensor.data, dtype)
        else:
            if len(tensor.data) != count:
                raise InvalidArgument(f"{tensor.data_field}: {len(tensor.data)} values, but shape "
                                      f"{list(shape)} needs {count}")
            array = np.asarray(tensor.data, dtype)
        _check_values(spec, array, f"{field} ({spec.name})")
        return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _refused(probabilities: np.ndarray, wanted: np.ndarray | None, least: float) -> np.ndarray:
    """Which images min_confidence refuses: read as another digit than asked for, or with
    a probability below ``least`` (unconditional images: their most probable digit's)."""
    if wanted is None:
        return probabilities.max(1) < least
    rows = np.arange(len(wanted))
    return (probabilities.argmax(1) != wanted) | (probabilities[rows, wanted] < least)


def check_digit(value: int, field: str) -> int:
    if not 0 <= value < DIGITS:
        raise InvalidArgument(f"{field}: a digit is 0-{DIGITS - 1}, got {value}")
    return value


def check_digits(values: Sequence[int], field: str, n: int) -> np.ndarray:
    """int64 [n] from exactly ``n`` digits."""
    if len(values) != n:
        raise InvalidArgument(f"{field}: {len(values):,} digits for {n} images; give one per image")
    array = np.asarray(values, np.int64)
    bad = np.flatnonzero((array < 0) | (array >= DIGITS))
    if len(bad):
        raise InvalidArgument(f"{field}[{bad[0]}]: a digit is 0-{DIGITS - 1}, got {array[bad[0]]}")
    return array


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


def _metadata(node) -> TensorMetadata:
    return TensorMetadata(node.name, DATATYPES[node.type][0], tuple(d if isinstance(d, int) else -1 for d in node.shape))
