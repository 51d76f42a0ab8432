import asyncio
import logging
import sys

from .settings import parse

settings = parse()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
if settings.workers > 1:
    from .workers import run_workers

    sys.exit(run_workers(settings))
from .app import serve  # noqa: E402  (after the settings: --help needs no onnxruntime)

sys.exit(asyncio.run(serve(settings)))
