"""The bearer-token file format, read by the server (``--auth-token-file``) and by the
client's command line (``--token-file``)."""

from __future__ import annotations


def token_lines(text: str) -> list[str]:
    """The tokens in a token file: one per line; blank lines and ``#`` comments are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
