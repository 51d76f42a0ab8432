import asyncio
import sys

from .logs import setup
from .settings import parse

settings = parse()
setup(settings.log_level, settings.log_format)
if settings.workers > 1:
    from .workers import run_workers

    sys.exit(run_workers(settings))
from .app import serve  # noqa: E402  (after the settings: --help needs no onnxruntime)

sys.exit(asyncio.run(serve(settings)))
