"""One call as every door hands it to the service core: its operation, the protocol it
came by, its deadline, its request id and caller, and, once known, the model version
that produced its answer (the ``model`` label of its metrics and access-log line)."""

from __future__ import annotations

import contextvars
import time

from .errors import DeadlineExceeded


class Call:
    """Whatever door a call came by, the core sees it as this.

    The label rule: ``model`` and ``version`` name the model whose output is the answer
    (Restyle's and Reconstruct's decoder, Interpolate's sampler or decoder, Encode's
    encoder), set once the operation has resolved it; empty before, so a call refused
    earlier is counted without a model.
    """

    __slots__ = ("rpc", "protocol", "deadline", "request_id", "caller", "model", "version", "code")

    def __init__(self, rpc: str, protocol: str, deadline: float | None = None, request_id: str | None = None,
                 caller: str = ""):
        self.rpc = rpc
        self.protocol = protocol  # "grpc" or "http"
        self.deadline = deadline  # on the time.monotonic() clock; None: none
        self.request_id = request_id
        self.caller = caller  # the peer's address where the door has it at no cost (HTTP's)
        self.model = ""
        self.version = 0
        self.code = ""  # the status a door's own refusal ended the call with, where the core did not

    def answered_by(self, name: str, version: int) -> None:
        self.model, self.version = name, version

    def limit(self, seconds: float) -> None:
        """Bring the deadline forward to ``seconds`` from now, where that is sooner."""
        deadline = time.monotonic() + seconds
        if self.deadline is None or deadline < self.deadline:
            self.deadline = deadline

    def check_deadline(self) -> None:
        """DeadlineExceeded if the deadline passed before the work started."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineExceeded(f"{self.rpc}: the deadline passed before the call started")


# The call a gRPC handler runs for, set by the gRPC door's gate before the handler runs:
# gRPC's handlers take (request, context) and nothing else.
current: contextvars.ContextVar[Call] = contextvars.ContextVar("call")
