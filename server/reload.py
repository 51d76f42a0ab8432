"""Hot reload (``--poll-interval``): watch the model repository and swap in new versions.

Every poll looks for a version newer than the one served. A new version must pass
its sha256 check, load in onnxruntime, match the model's tensor contract and warm up
before it is swapped in; the swap is one assignment on the event loop, so calls in
flight finish on the version they started with and new calls get the new one. A
version that fails is refused (logged, counted) and the old one keeps serving; it is
tried again only once its files change. A repository that disappears is reported,
and the server keeps serving what it loaded.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from genserve.repository import RepositoryError, newest_folders

from .engine import Engine
from .errors import StartupError
from .metrics import Metrics

log = logging.getLogger(__name__)


def _stamp(folder: Path) -> tuple:
    """What identifies a version folder's content cheaply: its files' sizes and mtimes."""
    stamp = []
    for name in ("model.onnx", "manifest.json"):
        try:
            info = (folder / name).stat()
            stamp.append((name, info.st_size, info.st_mtime_ns))
        except OSError:
            stamp.append((name, None, None))
    return tuple(stamp)


class RepositoryWatcher:
    def __init__(self, engine: Engine, repository: Path, interval: float, metrics: Metrics):
        self.engine = engine
        self.repository = Path(repository)
        self.interval = interval
        self.metrics = metrics
        self._refused: dict[Path, tuple] = {}  # folder -> its stamp when it was refused
        self._gone = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher must outlive any one bad poll
                log.exception("model repository poll failed; trying again in %.1f s", self.interval)

    async def poll(self) -> None:
        """One look at the repository; swaps in every new version that passes."""
        try:
            folders = await asyncio.to_thread(newest_folders, self.repository)
        except (RepositoryError, OSError) as exc:
            if not self._gone:
                reason = (f"{self.repository}: the model repository is gone" if isinstance(exc, RepositoryError)
                          else str(exc))
                log.error("%s; still serving the loaded models (%s)", reason, self.engine.describe())
                self._gone = True
                self.metrics.repository_readable.set(0)
            return
        if self._gone:
            log.info("%s: the model repository is readable again", self.repository)
            self._gone = False
            self.metrics.repository_readable.set(1)
        for name, folder in folders.items():
            current = self.engine.models.get(name)
            if current is not None and int(folder.name) <= current.version.version:
                continue
            stamp = await asyncio.to_thread(_stamp, folder)
            if self._refused.get(folder) == stamp:
                continue  # refused before, unchanged since
            try:
                model = await asyncio.to_thread(self.engine.load_version, folder)
            except (RepositoryError, StartupError) as exc:
                self._refused[folder] = stamp
                self.metrics.reloads.labels(name, "refused").inc()
                still = f"still serving version {current.version.version}" if current else "not served"
                log.error("refused %s version %s: %s; %s", name, folder.name, exc.reason, still)
                continue
            self.engine.install(model)
            self.metrics.reloads.labels(name, "loaded").inc()
            log.info("reloaded %s: version %s now serves new calls (was %s)", name, model.version.version,
                     current.version.version if current else "none")
