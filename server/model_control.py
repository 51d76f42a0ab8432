"""The Open Inference Protocol's model-repository extension over the engine: the
repository's index, and loading and unloading models as ``--model-control`` allows
(Triton's modes: ``none`` and ``poll`` refuse both, ``explicit`` takes both). A load
runs every check a reload runs (sha256, contract, warm-up, the quality gate) on each
version the version policy names, and answers once the model serves; one version
refused refuses the load, and what served before serves on. An unload lets the calls
already running on the model finish."""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from pathlib import Path

from genserve.repository import RepositoryError, version_folders

from .engine import Engine
from .errors import FailedPrecondition, ModelNotFound, NotReady, quoted
from .metrics import Metrics
from .reload import off_loop, why_refused
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str  # "" for a model with no version served
    state: str  # "READY" or "UNAVAILABLE"
    reason: str = ""


class ModelControl:
    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics):
        self.engine, self.settings, self.metrics = engine, settings, metrics
        self.repository = Path(settings.model_repository)
        self.reasons: dict[str, str] = {}  # model -> why none of its versions serves
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    async def _found(self) -> dict[str, dict[int, Path]]:
        try:
            return await off_loop(version_folders, self.repository)
        except (RepositoryError, OSError, asyncio.TimeoutError) as exc:
            raise NotReady(f"{self.repository}: the model repository cannot be read ({exc}); the loaded models "
                           "keep serving") from None

    def _allowed(self, action: str) -> None:
        if self.settings.control != "explicit":
            raise FailedPrecondition(f"{action}: this server runs --model-control {self.settings.control}; "
                                     "loading and unloading through the API need --model-control explicit")

    async def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model of the repository (and any served since removed from it): a line
        per served version, READY, or one UNAVAILABLE line with the reason."""
        found = await self._found()
        entries = []
        for name in sorted(set(found) | set(self.engine.served)):
            served = self.engine.served.get(name, {})
            entries += [IndexEntry(name, str(number), "READY") for number in sorted(served)]
            if not served and not ready_only:
                entries.append(IndexEntry(name, "", "UNAVAILABLE", self.reasons.get(name, "not loaded")))
        return entries

    async def load(self, name: str) -> list[int]:
        """Loads (or reloads) ``name``: the versions the policy names; returns them."""
        self._allowed("load")
        async with self._locks[name]:
            found = await self._found()
            if name not in found:
                raise ModelNotFound(f"model_name: no model {quoted(name)} in the repository; it has "
                                    f"{', '.join(sorted(found)) or 'none'}")
            chosen = sorted(self.settings.version_policy.choose(found[name]))
            served = self.engine.served.get(name, {})
            loaded = []
            for number in chosen:
                if number in served:
                    continue
                try:
                    loaded.append(await off_loop(self.engine.load_version, found[name][number]))
                except Exception as exc:  # whatever a version does wrong refuses the load
                    reason = why_refused(exc)
                    self.metrics.reloads.labels(name, "refused").inc()
                    still = (f"still serving version {', '.join(map(str, sorted(served)))}" if served
                             else "not served")
                    if not served:
                        self.reasons[name] = f"version {number} refused: {reason}"
                    log.error("load %s: refused version %d: %s; %s", name, number, reason, still)
                    raise FailedPrecondition(f"{name} version {number}: refused: {reason}; {still}") from None
            for model in loaded:
                self.engine.install(model)
                self.metrics.reloads.labels(name, "loaded").inc()
            self.engine.retire_except(name, set(chosen))
            self.reasons.pop(name, None)
            log.info("load %s: serving version %s", name, ", ".join(map(str, chosen)))
            return chosen

    async def unload(self, name: str) -> None:
        self._allowed("unload")
        async with self._locks[name]:
            if name not in self.engine.served:
                raise ModelNotFound(f"model_name: {quoted(name)} is not loaded; loaded: "
                                    f"{', '.join(sorted(self.engine.served)) or 'none'}")
            self.engine.unload(name)
            self.reasons[name] = "unloaded"
