"""Ctrl-C during training, taken at the next step rather than wherever it lands."""

from __future__ import annotations

import signal
import threading


class InterruptAtStep:
    """While active, a first SIGINT only sets ``requested``; the training loop raises
    KeyboardInterrupt at its next step (``check``). A second SIGINT raises at once.

    Python raises KeyboardInterrupt at whatever bytecode the signal lands on, and
    library code that checks for signals from C and clears the error can swallow it:
    once in CI a run went on to its end after a Ctrl-C. A flag cannot be lost.
    Not ``enabled``, or outside the main thread, where Python allows no handler, it
    does nothing and Ctrl-C works as usual.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous = None

    def __enter__(self) -> "InterruptAtStep":
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        self.check()  # the second Ctrl-C
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt
