"""``SysproSimulator``: the state, the clock, the rowversion counter, faults, and dispatch to the two APIs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, OrderedDict, deque
from contextvars import ContextVar
from datetime import date
from typing import Any, Callable, Iterable, Iterator, Mapping

from simulators._faults import COMMON_KINDS, Fault, FaultQueue
from simulators._http import Request, Response, json_response
from simulators.syspro.control import Control
from simulators.syspro.enet import _ENET_HEADERS, ENET_PREFIX, EnetApi, _enet_endpoint, _redact
from simulators.syspro.odata import ODATA_PREFIX, ODataApi
from simulators.syspro.seed import _load_seed
from simulators.syspro.sessions import Sessions, _Session
from simulators.syspro.tables import _SCHEMA, TIMESTAMP_FORMATS, _coerce, _sortable, _Table

FAULTS = (*COMMON_KINDS, "error_text")


_COMPANY: ContextVar[str | None] = ContextVar("syspro_sim_company", default=None)


class SysproSimulator(EnetApi, ODataApi, Sessions, Control):

    def __init__(
        self,
        *,
        operators: Mapping[str, Mapping[str, Any]] | None = None,
        companies: Mapping[str, Mapping[str, Any]] | None = None,
        idle_timeout_seconds: float = 1200.0,
        licence_seats_total: int = 5,
        clock: Callable[[], float] = time.monotonic,
        token_style: str = "syspro7",
        accept_untrimmed_token: bool = True,
        require_company_password: bool = False,
        version_string: str = "8.0.0.0",
        xml_version: str = "8.0.021",
        pad_numbers: bool = False,
        comfnd_conditions: Iterable[str] = ("EQ", "NE", "LT", "LE", "GT", "GE", "LIKE"),
        comfnd_timestamp: bool = True,
        odata_max_rows: int = 5000,
        odata_next_link: bool = False,
        odata_rowversion_filter: bool = False,
        business_date: date = date(2024, 5, 31),
        seed: bool = True,
        timestamp_format: str = "hex",
        first_rowversion: int = 0x0A1F00,
        comfnd_max_rows: int | None = None,
    ) -> None:
        self._lock = threading.RLock()
        default_ops = {
            "ENET01": {"password": "secret", "companies": ["EDU1"], "max_sessions": 1,
                       "odata_password": "odata-secret"},
        }
        self.operators: dict[str, dict[str, Any]] = {
            k.upper(): dict(v) for k, v in (operators or default_ops).items()
        }
        self.companies: dict[str, dict[str, Any]] = {
            k.upper(): dict(v) for k, v in (companies or {"EDU1": {"password": "", "name": "EDU1 Outdoors"}}).items()
        }
        self.idle_timeout_seconds = idle_timeout_seconds
        self.licence_seats_total = licence_seats_total
        self._clock = clock
        self._skew = 0.0
        self.token_style = token_style
        self.accept_untrimmed_token = accept_untrimmed_token
        self.require_company_password = require_company_password
        self.version_string = version_string
        self.xml_version = xml_version
        self.pad_numbers = pad_numbers
        self.comfnd_conditions = {c.upper() for c in comfnd_conditions}
        self.comfnd_timestamp = comfnd_timestamp
        self.odata_max_rows = odata_max_rows
        self.odata_next_link = odata_next_link
        self.odata_rowversion_filter = odata_rowversion_filter
        self.business_date = business_date
        if timestamp_format not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamp_format must be one of {sorted(TIMESTAMP_FORMATS)}")
        self.timestamp_format = timestamp_format
        self.first_rowversion = first_rowversion
        self.comfnd_max_rows = comfnd_max_rows
        self.public_scheme = "http"  # set to "https" when served with TLS (absolute nextLinks)
        self._seed = seed
        self._sessions: dict[str, _Session] = {}
        self._faults: FaultQueue[Fault] = FaultQueue(FAULTS)
        self.counters: Counter[str] = Counter()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=2000)
        self._streams: OrderedDict[tuple, tuple[int, Iterator[tuple]]] = OrderedDict()
        self._reset_data()

    def now(self) -> float:
        """The simulator's monotonic clock (seconds), including ``advance()``."""
        return self._clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the clock forward, e.g. past the idle timeout, without sleeping."""
        with self._lock:
            self._skew += seconds

    # Each SYSPRO company is a database of its own: its own tables (the first company configured
    # holds the seed). Requests read the company of their session (e.net) or path (OData);
    # control calls the first company unless inside ``company_data(...)``.

    @property
    def tables(self) -> dict[str, _Table]:
        company = (_COMPANY.get() or next(iter(self.companies))).upper()
        with self._lock:
            if company not in self._company_tables:
                self._company_tables[company] = {n: _Table(n, key, cols) for n, (key, cols) in _SCHEMA.items()}
            return self._company_tables[company]

    @contextlib.contextmanager
    def company_data(self, company: str) -> Iterator[None]:
        """Read and write ``company``'s tables inside this block (``insert_invoice`` and friends)."""
        token = _COMPANY.set(company.upper())
        try:
            yield
        finally:
            _COMPANY.reset(token)

    def _reset_data(self) -> None:
        self._company_tables: dict[str, dict[str, _Table]] = {}
        self._rowversion = self.first_rowversion
        self._version = 0  # bumps on every write; invalidates cached OData streams
        self._next_invoice = 90001
        self._next_journal = 400
        self._next_grn = 200
        self._next_gl_journal = 20
        self._next_payment = 46
        self._bulk_serial = 0
        self._streams.clear()
        if self._seed:
            _load_seed(self)

    def reset(self) -> None:
        """Reload the seed, drop every session, fault and counter (``POST /__sim/reset``)."""
        with self._lock:
            self._sessions.clear()
            self._faults.clear()
            self.counters.clear()
            self.request_log.clear()
            self._skew = 0.0
            self._reset_data()

    @property
    def rowversion(self) -> int:
        """The last rowversion handed out (the database's ``@@DBTS``)."""
        return self._rowversion

    def _table(self, name: str) -> _Table:
        for t in self.tables.values():
            if t.name.lower() == name.lower():
                return t
        raise KeyError(f"unknown table {name!r}")

    def _key_tuple(self, table: _Table, key: Any) -> tuple:
        parts = key if isinstance(key, (tuple, list)) else (key,)
        if len(parts) != len(table.key):
            raise ValueError(f"{table.name} key is {table.key}, got {parts!r}")
        return tuple(_sortable(_coerce(table.cols[p], v)) for p, v in zip(table.key_pos, parts))

    def _write(self, table: _Table, values: dict[str, Any], *, ts: int | None = None) -> dict[str, Any]:
        """Insert or replace one row; every write takes the next rowversion."""
        if ts is None:
            self._rowversion += 1
            ts = self._rowversion
        else:
            self._rowversion = max(self._rowversion, ts)
        values = dict(values)
        values["TimeStamp"] = ts
        row = tuple(_coerce(c, values.get(c.name)) for c in table.cols)
        key = table.key_of(row)
        if any(k == (1, "") or k == (0,) for k in key):
            raise ValueError(f"{table.name}: key columns {table.key} must not be blank")
        _, blk, i = table.find(key)
        if blk is not None and i is not None:
            blk.gone.add(i)  # the virtual row becomes a real one
        table.rows.pop(key, None)
        table.rows[key] = row
        self._version += 1
        return table.as_dict(row)

    def upsert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row, or update the row with the same key (merging the given columns)."""
        with self._lock:
            t = self._table(table)
            given = {t.col(k).name if t.col(k) else k: v for k, v in row.items()}
            unknown = [k for k in given if k not in t.pos]
            if unknown:
                raise KeyError(f"{t.name} has no column(s) {unknown}")
            key = tuple(_sortable(_coerce(t.cols[t.pos[k]], given.get(k))) for k in t.key)
            existing, _, _ = t.find(key)
            merged = t.as_dict(existing) if existing is not None else {}
            merged.update(given)
            merged.pop("TimeStamp", None)
            return self._write(t, merged)

    def update(self, table: str, key: Any, **changes: Any) -> dict[str, Any]:
        """Change columns of one row (by key value or tuple); its TimeStamp moves on."""
        with self._lock:
            t = self._table(table)
            existing, _, _ = t.find(self._key_tuple(t, key))
            if existing is None:
                raise KeyError(f"{t.name}: no row with key {key!r}")
            merged = t.as_dict(existing)
            for k, v in changes.items():
                col = t.col(k)
                if col is None:
                    raise KeyError(f"{t.name} has no column {k!r}")
                merged[col.name] = v
            merged.pop("TimeStamp", None)
            return self._write(t, merged)

    def delete(self, table: str, key: Any) -> bool:
        """Remove one row, as a purge would (rowversion does not see deletes)."""
        with self._lock:
            t = self._table(table)
            k = self._key_tuple(t, key)
            existing, blk, i = t.find(k)
            if existing is None:
                return False
            if blk is not None and i is not None:
                blk.gone.add(i)
            else:
                del t.rows[k]
            self._version += 1
            return True

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        """One row as a dict, or None."""
        with self._lock:
            t = self._table(table)
            row, _, _ = t.find(self._key_tuple(t, key))
            return None if row is None else t.as_dict(row)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The real (non-virtual) rows of a table, in rowversion order."""
        with self._lock:
            t = self._table(table)
            return [t.as_dict(r) for r in sorted(t.rows.values(), key=lambda r: r[t.ts_pos])]

    def count(self, table: str) -> int:
        """Rows in a table, virtual ones included."""
        with self._lock:
            return self._table(table).count()

    def inject(self, kind: str, *, times: int = 1, path: str | None = None, status: int = 503,
               text: str = "ERROR: e.net exception 100000", seconds: float = 1.0) -> None:
        """Make the next ``times`` matching calls fail (``simulators/_faults.py`` says what each
        kind does): ``status``, ``html``, ``truncated``, ``drop``, ``delay``, or ``error_text``
        (HTTP 200 with ``text``, e.net's way of failing). ``path`` matches an endpoint name such
        as ``Logon``, ``Query/Query`` or ``odata`` (case-insensitive); None matches every call.
        """
        self._faults.add(Fault(kind, times, path, status, seconds, text))

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._faults.clear()

    def _take_fault(self, endpoint: str) -> Fault | None:
        return self._faults.take(lambda f: f.path is None or f.path.lower() == endpoint.lower()
                                 or (f.path.lower() == "odata" and endpoint.startswith("odata")))

    def reset_counters(self) -> None:
        """Zero the per-endpoint request counters and the request log."""
        with self._lock:
            self.counters.clear()
            self.request_log.clear()

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request (called by ``serve_on_loopback`` or ``mock_transport``)."""
        path = request.path
        low = path.lower()
        with self._lock:
            if low.startswith("/__sim"):
                try:
                    return self._control(request, path[len("/__sim"):])
                except (KeyError, ValueError, TypeError) as exc:
                    return json_response({"error": str(exc)}, 400)
            if low.startswith(ENET_PREFIX.lower()):
                endpoint = _enet_endpoint(path[len(ENET_PREFIX):])
                handler: Callable[[], Response] = lambda: self._enet(request, endpoint)  # noqa: E731
            elif low.startswith(ODATA_PREFIX.lower()):
                rest = path[len(ODATA_PREFIX):].strip("/")
                endpoint = "odata:" + (rest.split("/", 1)[1] if "/" in rest else rest)
                handler = lambda: self._odata(request, rest)  # noqa: E731
            else:
                return Response(404, b"Endpoint not found.", {"Content-Type": "text/html"})
            self.counters[endpoint] += 1
            self.request_log.append({"method": request.method, "endpoint": endpoint,
                                     "query": _redact(request.query)})
            fault = self._take_fault(endpoint)
            if fault is None:
                return handler()
            return self._faulty(fault, handler)

    def _faulty(self, fault: Fault, handler: Callable[[], Response]) -> Response:
        if fault.kind == "error_text":
            return Response(200, fault.text.encode("cp1252", "replace"), dict(_ENET_HEADERS))
        if fault.kind == "status":
            body = (f"<html><head><title>{fault.status} Service Unavailable</title></head>"
                    f"<body><h1>HTTP Error {fault.status}</h1></body></html>").encode()
            return Response(fault.status, body, {"Content-Type": "text/html"})
        if fault.kind == "html":
            body = (b"<!DOCTYPE html>\r\n<html><head><title>IIS 10.0 Detailed Error</title></head>"
                    b"<body><h3>The page cannot be displayed because an internal server error has "
                    b"occurred.</h3></body></html>")
            return Response(200, body, {"Content-Type": "text/html"})
        if fault.kind == "drop":
            return Response(drop=True)
        resp = handler()
        if fault.kind == "delay":
            resp.delay = fault.seconds
        elif fault.kind == "truncated":
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
        return resp
