"""Which versions of each model the server serves, as Triton's version policy says it:
``latest:N`` (the N newest, default 2), ``all``, or ``specific:V1,V2,...``. Applied at
start and on every reload, so that a fresh server serves what one that reloaded does."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Iterable

from genserve.repository import parse_version


@dataclass(frozen=True)
class VersionPolicy:
    kind: str  # "latest", "all" or "specific"
    latest: int = 2
    versions: frozenset[int] = frozenset()

    def choose(self, available: Iterable[int]) -> set[int]:
        """The versions to serve out of those ``available`` (loadable) ones."""
        available = set(available)
        if self.kind == "all":
            return available
        if self.kind == "specific":
            return available & self.versions
        return set(sorted(available)[-self.latest:])

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest:{self.latest}"
        if self.kind == "specific":
            return "specific:" + ",".join(map(str, sorted(self.versions)))
        return "all"


def parse_policy(text: str) -> VersionPolicy:
    """``latest:N``, ``all`` or ``specific:V1,V2``; an argparse type."""
    kind, _, rest = text.strip().partition(":")
    if kind == "all" and not rest:
        return VersionPolicy("all")
    if kind == "latest":
        number = parse_version(rest)
        if number is not None:
            return VersionPolicy("latest", latest=number)
    if kind == "specific":
        versions = [parse_version(v.strip()) for v in rest.split(",")]
        if rest and None not in versions:
            return VersionPolicy("specific", versions=frozenset(versions))
    raise argparse.ArgumentTypeError(f"{text[:40]!r}: expected latest:N, all, or specific:V1,V2,... "
                                     "(versions and N positive integers)")
