"""One fault-injection vocabulary for every simulator.

A fault is queued with ``inject(kind, times=1, path=None, ...)`` and hits the next ``times``
requests it matches, in the order faults were queued; ``clear_faults()`` forgets the rest. The
words mean the same in every simulator:

    status     answer HTTP ``status`` (503 unless given), with an error body in the API's own style
    html       an HTML error page with HTTP 200, as a proxy, IIS or a load balancer sends
    truncated  the real answer, cut in half
    drop       close the connection without answering
    delay      the real answer, after ``seconds``

and what only one API has: SYSPRO's ``error_text`` (HTTP 200 with ``text``, an ``ERROR:`` reply)
and GP's ``auth_401`` (the NTLM handshake completes, then a final 401). Slack's faults are keyed
by Web API method and error code instead of a kind (``inject("chat.postMessage",
"channel_not_found")``), with the same ``times``, ``status``, ``seconds`` and ``drop``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, TypeVar

__all__ = ["Fault", "FaultQueue", "COMMON_KINDS"]

COMMON_KINDS = ("status", "html", "truncated", "drop", "delay")

F = TypeVar("F")


@dataclass
class Fault:
    """One queued fault of an ERP simulator (see the module docstring for the kinds)."""

    kind: str
    times: int = 1
    path: str | None = None  # only requests whose path (or endpoint name) contains this text
    status: int = 503
    seconds: float = 1.0
    text: str = ""

    def matches(self, path: str) -> bool:
        return self.path is None or self.path.lower() in path.lower()


class FaultQueue(Generic[F]):
    """Faults waiting to fire, taken first-queued first; safe to use from server threads.

    Every fault object has a ``times`` count; taking one that fires consumes one of its times.
    """

    def __init__(self, kinds: Iterable[str] = ()) -> None:
        self.kinds = tuple(kinds)
        self._items: list[F] = []
        self._lock = threading.Lock()

    def add(self, fault: F) -> None:
        kind = getattr(fault, "kind", None)
        if self.kinds and kind not in self.kinds:
            raise ValueError(f"unknown fault {kind!r}; one of {self.kinds}")
        if getattr(fault, "times", 1) < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._items.append(fault)

    def find(self, matches: Callable[[F], bool]) -> F | None:
        """The first queued fault that ``matches``, left in the queue."""
        with self._lock:
            return next((f for f in self._items if matches(f)), None)

    def take(self, matches: Callable[[F], bool]) -> F | None:
        """The first queued fault that ``matches``, with one of its times used up."""
        with self._lock:
            for f in self._items:
                if matches(f):
                    self._use(f)
                    return f
        return None

    def consume(self, fault: F) -> None:
        """Use up one time of a fault found earlier (one that fires only if the call succeeds)."""
        with self._lock:
            if any(f is fault for f in self._items):
                self._use(fault)

    def _use(self, fault: Any) -> None:
        fault.times -= 1
        if fault.times <= 0:
            self._items = [f for f in self._items if f is not fault]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
