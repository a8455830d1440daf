"""Simulators in their own process, driven over a pipe, plus the small helpers every benchmark shares.

A benchmark measures the client side. Serving a simulator from the benchmark's own process would
put its CPU time and memory under the same GIL and the same peak RSS as what is being measured,
so ``Remote`` starts the simulator in a child interpreter, serves it on loopback there and
forwards method calls to it: ``remote.call("posted")``
runs ``sim.posted()`` in the child and returns the (picklable) result. The child's own peak RSS
is reported separately (``remote.rss()``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import platform
import re
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["Remote", "serve_remote", "rss_mb", "machine", "table", "verdict", "Row"]


# --- memory ---------------------------------------------------------------------------------------


def rss_mb(pid: int | str = "self") -> dict[str, float]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of a process in MB, from /proc (Linux)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024.0
    except OSError:
        pass
    return out


# --- the child process ----------------------------------------------------------------------------
#
# The child is ``python -m bench._sims <kind> <json kwargs>``: a fresh interpreter that imports only
# the simulator. Requests and replies are length-prefixed pickles on its stdin and stdout; anything
# the simulator prints goes to stderr.


def _build(kind: str, kwargs: dict[str, Any]) -> tuple[Any, contextlib.AbstractContextManager[Any]]:
    from simulators._http import serve_on_loopback

    if kind == "slack":
        from simulators.slack import SlackSimulator

        sim = SlackSimulator(**kwargs)
        return sim, serve_on_loopback(sim)
    if kind == "syspro":
        from simulators.syspro import SysproSimulator

        sim = SysproSimulator(**kwargs)
        return sim, serve_on_loopback(sim)
    if kind == "gp":
        from simulators.gp import GpSimulator

        sim = GpSimulator(**kwargs)
        return sim, sim.serve()
    raise ValueError(f"unknown simulator {kind!r}")


def _send(stream: Any, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!I", len(blob)) + blob)
    stream.flush()


def _recv(stream: Any) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError
    (size,) = struct.unpack("!I", head)
    return pickle.loads(stream.read(size))


def _child(kind: str, kwargs: dict[str, Any]) -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries pickles only
    sim, serving = _build(kind, kwargs)
    with serving as served:
        _send(out, ("ready", served.url))
        while True:
            try:
                name, args, kw = _recv(inp)
            except EOFError:
                return
            if name == "__stop__":
                _send(out, ("ok", None))
                return
            try:
                if name == "__rss__":
                    result: Any = rss_mb()
                else:
                    attr = getattr(sim, name)
                    result = attr(*args, **kw) if callable(attr) else attr
                _send(out, ("ok", result))
            except Exception as exc:  # handed back to the caller, which re-raises it
                _send(out, ("error", f"{type(exc).__name__}: {exc}"))


class Remote:
    """A simulator served from a child process; ``call`` runs one of its methods there."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._sims", kind, json.dumps(kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_ROOT,
        )
        status, self.url = _recv(self._proc.stdout)
        assert status == "ready", status

    @property
    def pid(self) -> int:
        return self._proc.pid

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``sim.<name>(*args, **kwargs)`` in the child (or the attribute's value)."""
        _send(self._proc.stdin, (name, args, kwargs))
        status, result = _recv(self._proc.stdout)
        if status == "error":
            raise RuntimeError(f"{self.kind} simulator: {result}")
        return result

    def rss(self) -> dict[str, float]:
        """The simulator process's current and peak RSS in MB."""
        return self.call("__rss__")

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(Exception):
                _send(self._proc.stdin, ("__stop__", (), {}))
                _recv(self._proc.stdout)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.terminate()  # our own child, by its handle
                self._proc.wait(timeout=5)
        for stream in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()


@contextlib.contextmanager
def serve_remote(kind: str, **kwargs: Any) -> Iterator[Remote]:
    """``Remote`` as a context manager: the child is stopped when the block ends."""
    remote = Remote(kind, **kwargs)
    try:
        yield remote
    finally:
        remote.close()


# --- reporting ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a result table: the figures, the target and whether it was met (None: n/a)."""

    cells: list[str]
    met: bool | None = None


def table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    """A Markdown table (readable as plain text too), with a final ``met?`` column."""
    head = [*headers, "met?"]
    body = [[*r.cells, "n/a" if r.met is None else ("yes" if r.met else "NO")] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def verdict(name: str, rows: Sequence[Row], extra: str = "") -> str:
    """One line: how many targets were met."""
    judged = [r for r in rows if r.met is not None]
    met = sum(1 for r in judged if r.met)
    word = "PASS" if met == len(judged) else "GAPS"
    return f"verdict: {name}: {word}, {met}/{len(judged)} targets met{'; ' + extra if extra else ''}"


def machine() -> dict[str, str]:
    """Date, CPU count and model, Python and the versions of the packages that matter."""
    from importlib import metadata

    cpu = "unknown"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            m = re.search(r"^model name\s*:\s*(.+)$", fh.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    versions = {}
    for pkg in ("prefect", "slack_sdk", "httpx", "requests", "requests-ntlm", "SQLAlchemy", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def print_machine() -> None:
    m = machine()
    print(f"# {m['date']} · nproc {m['nproc']} · {m['cpu']} · Python {m['python']}")
    print(f"# {m['packages']}")


def run_json(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python <argv>`` in a fresh interpreter and parse the JSON its last stdout line holds."""
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def now() -> float:
    """Monotonic seconds; CLOCK_MONOTONIC is system-wide on Linux, so child processes agree."""
    return time.monotonic()


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})


# --- CPU accounting -------------------------------------------------------------------------------


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used so far (its own threads, not its children)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return sum(parts[:8]) - idle, sum(parts[:8])


class LoadMeter:
    """How busy the machine was during a measurement, and how much of that was someone else.

    The benchmark machine may be shared (other test runs): figures taken while other processes
    used the CPU are slower than the code is. ``others`` is the average number of cores used by
    processes outside ``pids`` (the benchmark and its simulators) while the meter ran.
    """

    def __init__(self, *pids: int | str) -> None:
        self.pids = pids or ("self",)
        self._t = time.monotonic()
        self._busy, _ = _busy_ticks()
        self._ours = sum(cpu_seconds(p) for p in self.pids)
        self.wall = self.ours = self.others = 0.0

    def stop(self) -> "LoadMeter":
        self.wall = time.monotonic() - self._t
        busy, _ = _busy_ticks()
        total = (busy - self._busy) / os.sysconf("SC_CLK_TCK")
        self.ours = sum(cpu_seconds(p) for p in self.pids) - self._ours
        self.others = max(0.0, total - self.ours) / self.wall if self.wall > 0 else 0.0
        return self
