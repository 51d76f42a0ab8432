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
import threading
from pathlib import Path
from typing import Callable, TypeVar

from genserve.repository import RepositoryError, version_folders

from .engine import Engine
from .errors import StartupError
from .metrics import Metrics

log = logging.getLogger(__name__)

READ_TIMEOUT = 120.0  # seconds one look at the repository, or one version's load, may take
T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args, timeout: float = READ_TIMEOUT) -> T:
    """``fn(*args)`` in a daemon thread of its own: the event loop never waits on the file
    system, and a read that hangs neither blocks the loop past ``timeout`` nor keeps the
    process from exiting on SIGTERM (the default executor's threads would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            outcome = (fn(*args), None)
        except BaseException as exc:  # handed to the awaiting coroutine, whatever it is
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed while this ran: nobody waits any more
            pass

    threading.Thread(target=run, name="repository-read", daemon=True).start()
    return await asyncio.wait_for(future, timeout)


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
        """One look at the repository: loads the versions the policy names that are not
        served yet, then retires those it no longer names."""
        try:
            folders = await off_loop(version_folders, self.repository)
        except (RepositoryError, OSError, asyncio.TimeoutError) as exc:
            if not self._gone:
                reason = (f"{self.repository}: the model repository is gone" if isinstance(exc, RepositoryError)
                          else f"{self.repository}: listing it took over {READ_TIMEOUT:g} s"
                          if isinstance(exc, asyncio.TimeoutError) else str(exc))
                log.error("%s; still serving the loaded models (%s)", reason, self.engine.describe())
                self._gone = True
                self.metrics.repository_readable.set(0)
            return
        if self._gone:
            log.info("%s: the model repository is readable again", self.repository)
            self._gone = False
            self.metrics.repository_readable.set(1)
        policy = self.engine.settings.version_policy
        for name, versions in folders.items():
            served = self.engine.served.get(name, {})
            try:
                stamps = {number: await off_loop(_stamp, folder) for number, folder in versions.items()
                          if number not in served}
            except (OSError, asyncio.TimeoutError):
                continue  # a folder went away or hangs: looked at again next time
            for number in sorted(policy.choose(self._loadable(versions, stamps, served)) - set(served)):
                await self._load(name, versions[number], stamps[number])
            served = self.engine.served.get(name, {})
            if served:  # what the policy names now that the new versions are in or refused
                self.engine.retire_except(name, policy.choose(self._loadable(versions, stamps, served)))

    def _loadable(self, versions: dict[int, Path], stamps: dict[int, tuple], served: dict) -> set[int]:
        """The versions on disk that are served or may be: a refused version, unchanged
        since, counts as absent, so that the policy picks among the others."""
        return {n for n in versions if n in served or self._refused.get(versions[n]) != stamps.get(n)}

    async def _load(self, name: str, folder: Path, stamp: tuple) -> None:
        current = self.engine.models.get(name)
        try:
            model = await off_loop(self.engine.load_version, folder)
        except Exception as exc:  # whatever a version does wrong, it is refused and remembered
            self._refused[folder] = stamp
            self.metrics.reloads.labels(name, "refused").inc()
            still = f"still serving version {current.version.version}" if current else "not served"
            log.error("refused %s version %s: %s; %s", name, folder.name, why_refused(exc), still)
            return
        self.engine.install(model)
        self.metrics.reloads.labels(name, "loaded").inc()
        log.info("reloaded %s: version %s now serves new calls (was %s)", name, model.version.version,
                 current.version.version if current else "none")

def why_refused(exc: Exception) -> str:
    """A refused version's reason, in a line."""
    if isinstance(exc, (RepositoryError, StartupError)):
        return exc.reason
    if isinstance(exc, asyncio.TimeoutError):
        return f"reading and loading it took over {READ_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {str(exc)[:200]}"
