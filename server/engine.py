"""onnxruntime sessions for the model repository, and genserve.v1's operations on
numpy arrays. Knows numpy and onnxruntime, not gRPC."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Imported here, at start: numpy loads numpy.random on first use, which would otherwise
# land on the first Encode or Sample call.
from numpy.random import PCG64, Generator
from prometheus_client import Histogram

from genserve.contract import (CONTRACTS, ONNX_TYPES, ContractError, ModelContract, declared_contract, mismatch,
                               random_input)
from genserve.pixels import to_pixels
from genserve.repository import ModelVersion, read_version, version_folders

from .batcher import Batcher
from .errors import FailedPrecondition, ModelNotFound, StartupError
from .gpu import bound_run, provider_options
from .metrics import Metrics
from .pixels import Images
from .sampling import span
from .settings import PROVIDER_NAMES, Settings
from .quality import GENERATORS, QualityWatch, gate_figures
from .statistics import ModelStatistics
from .tracing import Tracing

log = logging.getLogger(__name__)

REQUIRED = ("vae_encoder", "vae_decoder", "gan_generator", "dae")
# Roles whose one output is images: their runs also give the uint8 pixels when asked (see _run).
IMAGE_ROLES = frozenset({"sampler", "conditional_sampler", "decoder", "conditional_decoder", "denoiser"})
SAMPLERS = frozenset({"sampler", "conditional_sampler"})  # whose latent is a GAN's noise
WARM_UP_ROWS = (1, 16)  # batch sizes each session runs, and whose outputs are checked, before serving
# The event loop's runs of at least this many rows use two intra-op threads (wide_session).
WIDE_ROWS = 8
OPTIMIZATION = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def choose_providers(wanted: tuple[str, ...]) -> list[str]:
    """The asked-for providers this onnxruntime build has, in order. Refuses when
    none of them is available, e.g. ``--providers cuda`` on a CPU-only build."""
    available = ort.get_available_providers()
    chosen = [PROVIDER_NAMES[p] for p in wanted if PROVIDER_NAMES[p] in available]
    missing = [PROVIDER_NAMES[p] for p in wanted if PROVIDER_NAMES[p] not in available]
    if missing:  # expected where a preference falls back (cuda,cpu on a CPU-only install): no warning
        (log.info if chosen else log.warning)(
            "execution providers %s are not available in this onnxruntime build (it has %s)%s", ", ".join(missing),
            ", ".join(available), f"; using {', '.join(chosen)}" if chosen else "")
    if not chosen:
        raise StartupError(f"none of the execution providers asked for ({', '.join(wanted)}) is available; "
                           f"this onnxruntime has {', '.join(available)}")
    return chosen


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a loaded model, read once: onnxruntime builds its node
    descriptions anew on every access."""
    name: str
    type: str  # onnxruntime's, e.g. "tensor(float)"
    item_shape: tuple[int, ...]  # the sizes after the batch axis
    low: float = -math.inf  # the values a well-formed tensor holds (its contract's, where it has one)
    high: float = math.inf


@dataclass
class LoadedModel:
    version: ModelVersion
    # What its manifest declares (genserve.contract); None: served over the Open Inference Protocol alone.
    contract: ModelContract | None
    # Intra-op threads as set, for the runs the batcher hands to threads; onnxruntime lets
    # the instances run one session at once.
    session: ort.InferenceSession
    provider: str
    # One intra-op thread, for the event loop's runs of fewer than WIDE_ROWS, where a second
    # thread costs CPU and gains nothing. ``session`` itself when that has one thread.
    short_session: ort.InferenceSession | None = field(default=None, repr=False)
    # Two intra-op threads, for the event loop's runs of WIDE_ROWS or more: the loop, which
    # limits small requests, is held about half as long for the same CPU. ``session`` itself
    # when that has more than one thread; None with one core per worker, or on a GPU.
    wide_session: ort.InferenceSession | None = field(default=None, repr=False)
    batcher: Batcher | None = field(default=None, repr=False)
    # Its series of the run metrics, looked up once rather than per run.
    inference_seconds: Histogram | None = field(default=None, repr=False)
    batch_size: Histogram | None = field(default=None, repr=False)
    # The batching settings in force (Settings.serving): its manifest's over the flags.
    serving: dict = field(default_factory=dict)
    # The Open Inference Protocol's statistics of this version.
    statistics: ModelStatistics = field(default_factory=ModelStatistics, repr=False)

    @property
    def name(self) -> str:
        return self.version.name

    def loop_session(self, rows: int) -> ort.InferenceSession:
        """The session for a run of ``rows`` on the event loop: two threads for a batch, one
        for a request or two."""
        if self.wide_session is not None and rows >= WIDE_ROWS:
            return self.wide_session
        return self.short_session

    @property
    def role(self) -> str:
        return self.contract.role if self.contract is not None else ""

    @functools.cached_property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return self._tensors(self.session.get_inputs(), self.contract.inputs if self.contract else ())

    @functools.cached_property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return self._tensors(self.session.get_outputs(), self.contract.outputs if self.contract else ())

    @staticmethod
    def _tensors(nodes, specs) -> tuple[TensorInfo, ...]:
        ranges = {spec.name: (spec.low, spec.high) for spec in specs}
        return tuple(TensorInfo(node.name, node.type, tuple(int(d) for d in node.shape[1:]),
                                *ranges.get(node.name, ())) for node in nodes)

    @functools.cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(tensor.name for tensor in self.inputs)

    def rows(self, *arrays: np.ndarray) -> np.ndarray:
        """The model's inputs, in its input order, as the rows its batcher queues: the one
        array itself, or one structured array whose fields are the inputs, which the batcher
        concatenates and slices as it does plain rows."""
        if len(arrays) == 1:
            return arrays[0]
        rows = np.empty(len(arrays[0]), [(name, a.dtype, a.shape[1:]) for name, a in zip(self.input_names, arrays)])
        for name, array in zip(self.input_names, arrays):
            rows[name] = array
        return rows

    def feeds(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """onnxruntime's inputs for ``rows`` (see ``rows``)."""
        if rows.dtype.names is None:
            return {self.input_names[0]: rows}
        return {name: np.ascontiguousarray(rows[name]) for name in rows.dtype.names}

    @functools.cached_property
    def output_names(self) -> tuple[str, ...]:
        return tuple(tensor.name for tensor in self.outputs)

    @functools.cached_property
    def output_bytes(self) -> dict[str, int]:
        """Bytes per row of each output (float32, fixed item shapes: checked at load)."""
        return {tensor.name: 4 * math.prod(tensor.item_shape) for tensor in self.outputs}


class Engine:
    def __init__(self, settings: Settings, metrics: Metrics, worker: int = 0, tracing: Tracing | None = None):
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing
        # Cores per instance thread, for models on the CPU; None: the OS places the threads.
        self.instance_cores = settings.instance_cores(worker)
        self.models: dict[str, LoadedModel] = {}  # the newest served version of each model
        self.served: dict[str, dict[int, LoadedModel]] = {}  # every served version
        self._providers: list[str] = []
        self._retiring: set[asyncio.Task] = set()  # referenced until done, as asyncio asks
        self.quality: QualityWatch | None = None  # --quality-sample's reader, set by the app

    def load(self) -> None:
        """Load and warm up the versions the version policy names of every model in the
        repository (under explicit model control, of the models --load-model names);
        any of them failing its checks stops the start. The classifier comes first, as the
        quality gate reads the others' samples with it."""
        self._providers = choose_providers(self.settings.providers)
        policy = self.settings.version_policy
        repository = Path(self.settings.model_repository)
        found = version_folders(repository)
        explicit = self.settings.control == "explicit"
        names = set(found) if not explicit or "*" in self.settings.load_model else set(self.settings.load_model)
        absent = sorted(names - set(found))
        if absent:
            raise StartupError(f"--load-model {absent[0]}: no such model in {repository}; it has "
                               f"{', '.join(sorted(found)) or 'none'}")
        chosen = {name: [found[name][n] for n in sorted(policy.choose(found[name]))] for name in names}
        missing = [name for name in REQUIRED if not chosen.get(name)] if not explicit else []
        if missing:
            raise StartupError(f"{self.settings.model_repository}: no version of {', '.join(missing)} "
                               f"under the version policy {policy}")
        for name in sorted(chosen, key=lambda name: (name != "digit_classifier", name)):
            for folder in chosen[name]:
                self.install(self.load_version(folder))

    def unload(self, name: str) -> None:
        """Stop serving every version of ``name``: new calls no longer find it, calls already
        holding a version finish on it (each is retired once its queue is empty)."""
        self.models.pop(name, None)
        for model in self.served.pop(name, {}).values():
            self._retire_later(model)
        log.info("unloaded %s: calls already running on it finish", name)

    def load_version(self, folder: Path) -> LoadedModel:
        """One version folder, checked (sha256, contract), loaded and warmed up; not yet served."""
        return self._load(read_version(Path(folder)))

    def _session(self, version: ModelVersion, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = OPTIMIZATION[self.settings.graph_optimization]
        # Spinning threads burn the cores that concurrent requests need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without onnxruntime's arena, a burst of large batches gives its memory back
        # afterwards instead of holding its peak for the life of the process.
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3
        s = self.settings
        providers = [(name, provider_options(name, s.cuda_device, s.gpu_mem_limit, s.gpu_arena_extend_strategy))
                     for name in self._providers]
        try:
            return ort.InferenceSession(str(version.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for bad files
            raise StartupError(f"{version.path}: onnxruntime cannot load it: {exc}") from None

    def _load(self, version: ModelVersion) -> LoadedModel:
        name, providers, threads = version.name, self._providers, self.settings.threads_per_run
        try:
            contract = declared_contract(name, version.manifest)
        except ContractError as exc:
            raise StartupError(f"{version.path.parent / 'manifest.json'}: {exc}") from None
        known = CONTRACTS.get(name)  # a name genserve.v1 calls keeps its role
        if known is not None and contract.role != known.role:
            raise StartupError(f"{version.path}: does not match {name}'s contract: its manifest gives it the role "
                               f"{contract.role}; {name} is the {known.role}")
        try:
            serving = self.settings.serving(version.manifest)
        except ValueError as exc:
            raise StartupError(f"{version.path.parent / 'manifest.json'}: {exc}") from None
        session = self._session(version, threads)
        _check_contract(name, contract, session, version.path)
        if name in self.models:
            _check_same_tensors(self.models[name], session, version.path)
        provider = session.get_providers()[0]
        if provider != providers[0]:
            log.warning("%s: %s did not load; running on %s", name, providers[0], provider)
        short_session = session if threads == 1 else self._session(version, 1)
        if threads > 1:
            wide_session = session
        elif serving["instances"] > 1 and provider == "CPUExecutionProvider":
            wide_session = self._session(version, 2)
        else:
            wide_session = None
        model = LoadedModel(version, contract, session, provider, short_session, wide_session,
                            inference_seconds=self.metrics.inference_seconds.labels(name),
                            batch_size=self.metrics.batch_size.labels(name))
        try:
            self._warm_up(model)
        except Exception as exc:
            raise StartupError(f"{version.path}: the warm-up run failed: {exc}") from None
        self._quality_gate(model)
        model.batcher = Batcher(
            name, lambda rows, pixels, m=model: self._run(m, m.session, rows, pixels),
            run_short=lambda rows, pixels, m=model: self._run(m, m.loop_session(len(rows)), rows, pixels),
            max_batch=serving["max_batch_size"], max_delay=serving["max_queue_delay_us"] / 1e6,
            max_queue=self.settings.max_queue_size, metrics=self.metrics,
            max_gather=serving["max_gather_us"] / 1e6, instances=serving["instances"],
            on_queued=model.statistics.queued, cores=self._cores(provider, serving["instances"]), tracing=self.tracing)
        model.serving = serving
        return model

    def _quality_gate(self, model: LoadedModel) -> None:
        """--quality-gate: a generator version the served classifier judges poorly is refused."""
        gate = self.settings.quality_gate
        if not gate or model.role not in GENERATORS:
            return
        classifier = self.models.get("digit_classifier")
        if classifier is None:
            log.warning("%s version %d: no digit_classifier is served, so the quality gate cannot judge it; "
                        "admitted", model.name, model.version.version)
            return
        figures = gate_figures(model, classifier)
        score = figures.agreement if figures.agreement is not None else min(figures.confidence, figures.spread)
        self.metrics.quality_gate_score.labels(model.name, str(model.version.version)).set(score)
        refusal = figures.refusal(gate)
        self.metrics.quality_gate.labels(model.name, "refused" if refusal else "admitted").inc()
        if refusal:
            raise StartupError(f"{model.version.path}: refused by the quality gate ({refusal}): {figures.describe()}")
        log.info("%s version %d passes the quality gate %g: %s", model.name, model.version.version, gate,
                 figures.describe())

    def _cores(self, provider: str, instances: int) -> list[frozenset[int]] | None:
        """The cores of a model's instance threads: the worker's first ``instances`` sets,
        on the CPU; None (the OS places them) on a GPU or past the cores pinned."""
        if provider != "CPUExecutionProvider" or self.instance_cores is None or instances > len(self.instance_cores):
            return None
        return self.instance_cores[:instances]

    def install(self, model: LoadedModel) -> None:
        """Serve ``model``: new calls get it if it is the newest version. One assignment,
        so a call already holding the old version finishes on it."""
        name, number = model.name, model.version.version
        served = self.served.setdefault(name, {})
        served[number] = model
        if name not in self.models or number > self.models[name].version.version:
            self.models[name] = model
        self.metrics.model_info.labels(name, str(number), model.provider).set(1)
        log.info("loaded %s version %d on %s (sha256 %s)", name, number, model.provider,
                 model.version.manifest["sha256"][:12])

    def retire_except(self, name: str, keep: set[int]) -> None:
        """Stop serving the versions of ``name`` not in ``keep``, each once its queue is
        empty; a model always keeps at least one version."""
        served = self.served.get(name, {})
        keep = keep & set(served) or {max(served, default=0)}
        for old in sorted(set(served) - keep):
            self._retire_later(served.pop(old))
        if served and self.models[name].version.version not in served:
            self.models[name] = served[max(served)]

    def _retire_later(self, model: LoadedModel) -> None:
        task = asyncio.get_running_loop().create_task(self._retire(model))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, model: LoadedModel) -> None:
        try:
            self.metrics.model_info.remove(model.name, str(model.version.version), model.provider)
        except KeyError:
            pass
        while not model.batcher.idle:
            await asyncio.sleep(0.05)
        await model.batcher.close()
        log.info("retired %s version %d", model.name, model.version.version)

    def describe(self) -> str:
        """The served models for a log line: "dae v3 on CPUExecutionProvider, ...; 2 instances
        of 1 onnxruntime thread each, pinned to cores 0 | 1"."""
        instances, threads = self.settings.model_instances, self.settings.threads_per_run
        pinned = ""
        if self.instance_cores and any(m.provider == "CPUExecutionProvider" for m in self.models.values()):
            pinned = ", pinned to cores " + " | ".join(
                ",".join(map(str, sorted(cores))) for cores in self.instance_cores)
        return (", ".join(f"{name} v{m.version.version} on {m.provider}" for name, m in sorted(self.models.items()))
                + f"; {instances} instance{'s' * (instances > 1)} of {threads} onnxruntime "
                  f"thread{'s' * (threads > 1)} each{pinned}")

    def _warm_up(self, model: LoadedModel) -> None:
        """Runs every session on inputs within the contract's ranges and checks that each
        output has a row per input row, its item shape, and values within its range."""
        contract = model.contract
        rng = np.random.default_rng(0)
        for session in {model.session, model.short_session, model.wide_session} - {None}:
            for n in WARM_UP_ROWS:
                if contract is not None:
                    feeds = {spec.name: random_input(spec, n, rng) for spec in contract.inputs}
                else:  # standard normal floats; zeros for integers, which are often indices
                    feeds = {node.name: (np.zeros((n, *node.shape[1:]), np.int64) if node.type == ONNX_TYPES["int64"]
                                         else rng.standard_normal((n, *node.shape[1:]), dtype=np.float32))
                             for node in session.get_inputs()}
                for i, (out, array) in enumerate(zip(session.get_outputs(), session.run(None, feeds))):
                    want = (n, *out.shape[1:])
                    if array.shape != want:
                        raise ValueError(f"output {out.name} has shape {list(array.shape)} for {n} rows; "
                                         f"expected {list(want)}")
                    if not np.isfinite(array).all():
                        raise ValueError(f"output {out.name} holds NaN or infinite values")
                    spec = contract.outputs[i] if contract is not None else None
                    if spec is not None and (array.min() < spec.low - 1e-6 or array.max() > spec.high + 1e-6):
                        raise ValueError(f"output {out.name} holds values in [{array.min():.4g}, {array.max():.4g}], "
                                         f"outside [{spec.low:g}, {spec.high:g}]")

    def model(self, name: str, version: int = 0, role: str | None = None) -> LoadedModel:
        """The served ``version`` of a model; 0: the newest. With ``role``, a genserve.v1
        operation's model (whose role ``_load`` has checked): missing, a FailedPrecondition."""
        if role is not None and name not in self.models:
            where = ("not loaded (--model-control explicit: load it through the repository API)"
                     if self.settings.control == "explicit" else "not in the model repository")
            raise FailedPrecondition(f"{name}: {where}; this call needs it as the {role}")
        if name not in self.models:
            raise ModelNotFound(f"model {name!r} is not loaded")
        if not version:
            return self.models[name]
        try:
            return self.served[name][version]
        except KeyError:
            served = ", ".join(str(v) for v in sorted(self.served[name], reverse=True))
            raise ModelNotFound(f"version: {name} version {version} is not served; it serves {served}") from None

    def _run(self, model: LoadedModel, session: ort.InferenceSession, rows: np.ndarray, pixels: bool
             ) -> list[np.ndarray]:
        """The model's outputs, in its output order; with ``pixels``, an image model's uint8
        pixels after them.

        The pixels are converted here, once per batch and in the instance's thread when the
        run has one: per call on the event loop they would cost a small request more than
        its share of the run."""
        started = time.perf_counter()
        feeds = model.feeds(rows)
        fed = time.perf_counter()
        if model.provider == "CPUExecutionProvider":
            outputs = session.run(None, feeds)
        else:  # on a GPU: each input copied to the device once, each output fetched once
            outputs = bound_run(session, feeds, model.output_names)
        ran = time.perf_counter()
        model.inference_seconds.observe(ran - started)
        model.batch_size.observe(len(rows))
        if pixels and model.role in IMAGE_ROLES:
            outputs.append(to_pixels(outputs[0]))
        model.statistics.executed(len(rows), fed - started, ran - fed, time.perf_counter() - ran)
        return outputs

    async def infer(self, model: LoadedModel, rows: np.ndarray, deadline: float | None = None,
                    pixels: bool = True, background: bool = False) -> list[np.ndarray]:
        """The model's outputs, in its output order (with ``pixels``, an image model's pixels
        after them; without, the Open Inference Protocol's case, they are left out of the run
        unless a batch shares it with a call that wants them), through its batcher. ``model``
        is the version the call resolved when it started (``model()``), whatever is swapped in since.
        ``background``: a stream's rows, which yield to ordinary calls (``Batcher.infer_background``)."""
        started, ok = time.perf_counter(), False
        try:
            if background:
                outputs = await model.batcher.infer_background(rows, deadline, pixels)
            else:
                outputs = await model.batcher.infer(rows, deadline, pixels)
            ok = True
            return outputs
        finally:
            model.statistics.request(ok, time.perf_counter() - started, len(rows))

    async def close(self) -> None:
        if self.quality is not None:
            await self.quality.close()  # its readings wait on the classifier's batcher
        for task in self._retiring:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for versions in self.served.values():
            for model in versions.values():
                await model.batcher.close()

    # The operations, each on the model version its call resolved. Images come in as
    # float32 [N,1,28,28] in [0,1] and go out as Images: those floats and their uint8 pixels.
    # Digits come in as int64 [N] in 0-9.

    async def encode(self, model: LoadedModel, images: np.ndarray, seed: int, deadline: float | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, log_var = await self.infer(model, images, deadline)
        eps = _noise(seed, mean.shape)
        return mean, log_var, (mean + np.exp(0.5 * log_var) * eps).astype(np.float32)

    async def decode(self, model: LoadedModel, z: np.ndarray, deadline: float | None = None) -> Images:
        return Images(*await self.infer(model, z, deadline))

    async def generate(self, model: LoadedModel, latents: np.ndarray, digits: np.ndarray | None = None,
                       deadline: float | None = None, background: bool = False) -> Images:
        """Images from latents through a sampler or decoder, conditional ones given ``digits``
        (a share of which --quality-sample reads)."""
        rows = latents if digits is None else model.rows(latents, digits)
        images = Images(*await self.infer(model, rows, deadline, background=background))
        if self.quality is not None and digits is not None:
            self.quality.offer(model, images.floats, digits)
        return images

    async def encode_means(self, model: LoadedModel, images: np.ndarray, digits: np.ndarray | None = None,
                           deadline: float | None = None) -> np.ndarray:
        """The posterior means of images through an encoder, conditional ones given ``digits``."""
        rows = images if digits is None else model.rows(images, digits)
        return (await self.infer(model, rows, deadline))[0]

    async def classify(self, model: LoadedModel, images: np.ndarray, deadline: float | None = None,
                       background: bool = False) -> np.ndarray:
        """P(digit | image), float32 [N,10], from the classifier's logits."""
        logits = (await self.infer(model, images, deadline, background=background))[0].astype(np.float64)
        exp = np.exp(logits - logits.max(1, keepdims=True))
        return (exp / exp.sum(1, keepdims=True)).astype(np.float32)

    async def denoise(self, model: LoadedModel, images: np.ndarray, deadline: float | None = None) -> Images:
        return Images(*await self.infer(model, images, deadline))


def _check_contract(name: str, contract: ModelContract | None, session: ort.InferenceSession, path: Path) -> None:
    """A model with a role must keep its role's contract (genserve.contract); any other is
    served over the Open Inference Protocol alone, and must have inputs and outputs of
    float32 or int64 (outputs float32), each with the batch axis first and fixed sizes after it."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if contract is not None:
        problem = mismatch(contract, inputs, outputs)
    else:
        problem = None
        if not inputs or not outputs:
            problem = f"at least one input and one output, it has {len(inputs)} and {len(outputs)}"
        for node in (*inputs, *outputs):
            shape = list(node.shape)
            types = ONNX_TYPES.values() if node in inputs else (ONNX_TYPES["float32"],)
            if (node.type not in types or not shape or isinstance(shape[0], int)
                    or not all(isinstance(d, int) and d > 0 for d in shape[1:])):
                kinds = "float32 or int64" if node in inputs else "float32"
                problem = problem or f"{node.name} must be {kinds} [N, fixed sizes]; it is {node.type} {shape}"
    if problem:
        raise StartupError(f"{path}: does not match {name}'s contract: {problem}")


def _check_same_tensors(served: LoadedModel, session: ort.InferenceSession, path: Path) -> None:
    """A new version must take and give what the version it joins does."""
    def spell(s: ort.InferenceSession) -> list:
        return [(n.name, n.type, [d if isinstance(d, int) else "N" for d in n.shape])
                for n in (*s.get_inputs(), *s.get_outputs())]
    if spell(session) != spell(served.session):
        raise StartupError(f"{path}: its tensors differ from those of {served.name} version "
                           f"{served.version.version}: {spell(session)} against {spell(served.session)}")


def seed_latents(model: LoadedModel, seed: int, n: int, truncation: float | None = None) -> np.ndarray:
    """The latents Sample draws from ``seed`` for its ``n`` images of a sampler or decoder
    (``sampling`` says how they are keyed)."""
    return span(seed, 0, n, model.contract.inputs[0].item_shape[0], model.role in SAMPLERS, truncation)


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 noise: the stream of numpy's ``default_rng(seed)``, built
    without default_rng's argument checks (a quarter of the cost of a batch-1 Sample's noise)."""
    return Generator(PCG64(seed)).standard_normal(shape, dtype=np.float32)


def fresh_seed() -> int:
    return secrets.randbits(63)
