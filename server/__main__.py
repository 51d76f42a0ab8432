import asyncio
import logging
import sys

from .app import serve
from .settings import parse

settings = parse()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(asyncio.run(serve(settings)))
