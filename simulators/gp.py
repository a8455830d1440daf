"""A Dynamics GP Service Based Architecture (SBA) REST simulator for tests, the demo and benchmarks.

``GpSimulator`` is a plain app (``handle(request) -> Response``) with every piece of state on the
instance, served on loopback by ``simulators._http.serve_on_loopback`` (HTTP/1.1 keep-alive, so an
NTLM handshake can span one connection). It follows the vendor documentation:

* URL shape ``/GPService/Tenants(T)/Companies(C)/<Series>/<Resource>[(<key>[;<key2>])]`` with the
  company name percent-encoded. Resources: ``Purchasing/Vendors``,
  ``Purchasing/Payables/Transactions``, ``Purchasing/Transactions`` (purchase orders),
  ``Purchasing/Receipts`` (simulator convention, not in the documented catalog) and
  ``Financials/GeneralLedger/Transactions`` (simulator extension: GL is not in the SBA catalog and, so it can be switched off to answer 404 like a site that does not expose it).
* Real NTLM/Negotiate authentication with pyspnego as the acceptor: the first
  401 carries ``WWW-Authenticate: Negotiate`` and ``WWW-Authenticate: NTLM``, the second leg the
  challenge, the third leg success or a final 401 with fresh challenge headers. The context lives
  in the per-connection ``Request.conn`` dict; once a connection is authenticated further requests
  on it need no header (HTTP.sys connection-based NTLM), unless ``reauth_per_request`` is set.
  Optional channel binding (Extended Protection) over TLS with ``require_cbt``.
* Authorization as GP does it: Windows principal -> GP user -> company access;
  an unmapped principal or a company without access answers 403.
* The response envelope and list shape are unknown for real SBA, so both are switchable:
  ``envelope`` ``"payload"`` (``{"Payload": ...}``) or ``"bare"``; ``list_shape`` ``"array"`` or
  ``"object"`` (``{"Items": [...], "Count": n}``). Optional paging (``page_size``) gives a next link:
  ``Links: [{"Rel": "next", "Href": ...}]`` beside a payload array, ``NextLink`` inside an object,
  and an HTTP ``Link: <...>; rel="next"`` header when the body is a bare array.
* Query parameters other than the simulator's own ``$skiptoken`` are IGNORED: nothing shows that
  real SBA supports filtering, so a client must filter on ``ModifiedDate`` itself.
* Every record carries a UTC ``ModifiedDate`` stamped on change (strictly increasing). Receipts
  only carry a day-granular ``ModifiedDate`` (``YYYY-MM-DDT00:00:00``, no offset) because POP
  receipt tables have no DEX_ROW_TS. A GL entry's stamp is the newest of its
  lines.
* Seed data styled on the GP sample company "Fabrikam, Inc.".
* Control calls as Python methods and, for other processes, ``POST /__sim/<method>`` with a JSON
  object of keyword arguments (``GET /__sim/counters``, ``GET /__sim/requests``). Fault injection
  (503, 500, dropped connection, delay, HTML page with 200, truncated JSON, 401 after the
  handshake, 403) and request counters.
* ``generate`` adds N synthetic rows that are produced on demand page by page, so a million rows
  can be served with paging without ever being held in memory.

Run alone with ``python -m simulators.gp --port 0 [--tls]``.

This module imports nothing from the project core (``erp_slack``), flows, tasks or blocks.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import ssl
import tempfile
import threading
import uuid
import weakref
from collections import Counter, deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import quote, unquote

from simulators._faults import COMMON_KINDS, Fault, FaultQueue
from simulators._http import Request, Response, Served, serve_on_loopback

__all__ = [
    "GpSimulator",
    "DEFAULT_TENANT",
    "DEFAULT_COMPANY",
    "DEFAULT_USER",
    "DEFAULT_PASSWORD",
    "PO_STATUS",
    "RESOURCES",
    "FAULTS",
    "main",
]

DEFAULT_TENANT = "DefaultTenant"  # the tenant name of a single-tenant install
DEFAULT_COMPANY = "Fabrikam, Inc."  # the GP sample company
DEFAULT_USER = "CONTOSO\\svc-gp-poll"  # the service account of the example
DEFAULT_PASSWORD = "Passw0rd!"
CURRENCY = "Z-US$"  # GP currency ID of the sample company's functional currency

# PurchaseOrderStatus codes.
PO_STATUS: Mapping[int, str] = {1: "New", 2: "Released", 3: "Change Order", 4: "Received", 5: "Closed", 6: "Canceled"}
# Allowed moves (1→2→4→5 / 6; editing a Released PO makes it a Change Order).
_PO_MOVES: Mapping[int, frozenset[int]] = {
    1: frozenset({2, 6}),
    2: frozenset({3, 4, 5, 6}),
    3: frozenset({2, 4, 5, 6}),
    4: frozenset({5}),
    5: frozenset(),
    6: frozenset(),
}
# PayablesDocumentType codes.
_DOC_TYPES: Mapping[int, str] = {
    1: "Invoice", 2: "Finance Charge", 3: "Miscellaneous Charge", 4: "Return", 5: "Credit Memo", 6: "Payment",
}
_DOC_TYPE_CODES = {name.lower(): code for code, name in _DOC_TYPES.items()}
# ApprovalWorkflowStatus codes; purchase orders carry the number, like the POP10100 column.
_APPROVAL: Mapping[int, str] = {
    1: "Not Submitted", 2: "Submitted", 3: "No Approval Needed", 4: "Pending Approval", 5: "Pending Changes",
    6: "Approved", 7: "Rejected", 8: "Workflow Ended", 9: "Not Enabled", 10: "Disabled",
}
_APPROVAL_CODES = {name.lower(): code for code, name in _APPROVAL.items()}

FAULTS = (*COMMON_KINDS, "auth_401")

# Segments that may follow the company key; they mark the balanced closing parenthesis when the
# company name itself contains raw parentheses ( "Key parsing").
_SERIES = ("Purchasing", "Sales", "Financials", "System", "Inventory", "Administration", "help")

# Above this many rows an unpaged list would be one giant body; refuse instead.
MAX_UNPAGED_ROWS = 100_000
_LOG_SIZE = 2000


@dataclass(frozen=True)
class _Resource:
    name: str
    path: str
    key_parts: int
    switch: str | None = None  # attribute that hides the resource (404) when False


RESOURCES: tuple[_Resource, ...] = (
    _Resource("vendors", "Purchasing/Vendors", 1),
    _Resource("payables", "Purchasing/Payables/Transactions", 2),
    _Resource("purchase_orders", "Purchasing/Transactions", 1),
    _Resource("receipts", "Purchasing/Receipts", 1, "expose_receipts"),
    _Resource("gl", "Financials/GeneralLedger/Transactions", 2, "expose_gl"),
)
_BY_NAME = {r.name: r for r in RESOURCES}


# --- small value helpers -------------------------------------------------------------------------


def _ts(dt: datetime) -> str:
    """A UTC timestamp as the simulator serialises ``ModifiedDate`` (UTC with ``Z``)."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _day(d: date | datetime) -> str:
    """A GP calendar date: midnight, no offset."""
    return f"{d:%Y-%m-%d}T00:00:00"


def _money(value: Any, currency: str = CURRENCY) -> dict[str, Any]:
    # MoneyAmount = {Currency, DecimalDigits, Value}.
    return {"Value": Decimal(str(value)).quantize(Decimal("0.01")), "Currency": currency, "DecimalDigits": 2}


# Amounts are kept as Decimal and written as JSON numbers with their scale ("1287.50", like the
# sample bodies). The json module cannot emit raw number text, so a Decimal is first written
# as a marked string and the marks are removed afterwards.
_NUM_MARK = "\u0000#"
_NUM_RE = re.compile(r'"\\u0000#(-?[0-9]+(?:\.[0-9]+)?)"')


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return f"{_NUM_MARK}{obj:f}"
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _dumps(obj: Any) -> bytes:
    text = json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return _NUM_RE.sub(r"\1", text).encode("utf-8")


def _parse_day(value: Any, default: date) -> date:
    if value is None or value == "":
        return default
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _status_code(value: Any, names: Mapping[str, int], what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        code = value
    elif str(value).strip().isdigit():
        code = int(str(value).strip())
    else:
        try:
            code = names[str(value).strip().lower()]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}") from None
    if code not in names.values():
        raise ValueError(f"unknown {what} {value!r}")
    return code


def _token_encode(position: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def _token_decode(token: str) -> list[Any]:
    padded = token + "=" * (-len(token) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    if not isinstance(value, list) or not value or value[0] not in ("e", "b"):
        raise ValueError("bad skiptoken")
    return value


# --- state containers ----------------------------------------------------------------------------


class _Table:
    """Rows of one resource in one company, kept in key order for stable keyset paging."""

    def __init__(self, order: Callable[[Mapping[str, Any]], tuple]) -> None:
        self._order = order
        self._keys: list[tuple] = []
        self._rows: dict[tuple, dict[str, Any]] = {}

    def put(self, row: dict[str, Any]) -> tuple:
        key = self._order(row)
        if key not in self._rows:
            bisect.insort(self._keys, key)
        self._rows[key] = row
        return key

    def get(self, key: tuple) -> dict[str, Any] | None:
        return self._rows.get(key)

    def rows(self) -> Iterator[dict[str, Any]]:
        for k in self._keys:
            yield self._rows[k]

    def after(self, key: tuple | None) -> Iterator[tuple[tuple, dict[str, Any]]]:
        i = 0 if key is None else bisect.bisect_right(self._keys, key)
        while i < len(self._keys):
            k = self._keys[i]
            yield k, self._rows[k]
            i += 1

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class _Bulk:
    """``count`` synthetic rows numbered from ``first``, made on demand (benchmarks)."""

    first: int
    count: int
    base: datetime


def _order_for(resource: str) -> Callable[[Mapping[str, Any]], tuple]:
    if resource == "payables":
        return lambda r: (r["_type_code"], r["Key"]["Id"])
    if resource == "gl":
        return lambda r: (int(r["Key"]["JournalId"]), int(r["Key"]["Year"]))
    return lambda r: (r["Key"]["Id"],)


class _Company:
    def __init__(self, company_id: int, name: str) -> None:
        self.id = company_id
        self.name = name
        self.tables: dict[str, _Table] = {r.name: _Table(_order_for(r.name)) for r in RESOURCES}
        self.bulk: dict[str, list[_Bulk]] = {r.name: [] for r in RESOURCES}
        self.next_voucher = 700
        self.next_po = 2110
        self.next_receipt = 1188
        self.next_journal = 3419


@dataclass
class _User:
    principal: str  # DOMAIN\user, the Windows account
    password: str
    gp_user: str | None  # the mapped GP user (User Setup → Windows Account); None = not mapped
    companies: set[str]
    epoch: int = 0  # bumped on password change: authenticated connections must log on again


@dataclass(frozen=True)
class _Route:
    tenant: str
    tail: str  # "help", "Companies", or "" when a company follows
    company: str | None = None
    resource: _Resource | None = None
    key: tuple[str, ...] | None = None
    unknown: str | None = None  # a path under the company that names no resource


# The pure-Python NTLM acceptor reads its user file from the process-wide NTLM_USER_FILE
# variable, so every acceptor step runs under this lock with the variable pointing at
# the stepping simulator's own file. Several simulators can then live in one process.
_ACCEPTOR_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _ntlm_user_file(path: str) -> Iterator[None]:
    with _ACCEPTOR_ENV_LOCK:
        before = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = path
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = before


def _is_ntlm_negotiate(token: bytes) -> bool:
    """True for an NTLM type-1 message or an SPNEGO initial token: a handshake (re)starts."""
    return (token[:8] == b"NTLMSSP\x00" and token[8:12] == b"\x01\x00\x00\x00") or token[:1] == b"\x60"


def _header_variants(name: str, values: Sequence[str]) -> dict[str, str]:
    """Repeat one header: ``Response.headers`` is a dict, so vary the (case-insensitive) name.

    HTTP.sys sends ``WWW-Authenticate: Negotiate`` and ``WWW-Authenticate: NTLM`` as two header
    lines; differently-cased keys give exactly that on the wire.
    """
    spellings = [name, name.lower(), name.upper(), name.title(), name.swapcase()]
    out: dict[str, str] = {}
    for spelling, value in zip(spellings, values):
        out[spelling] = value
    return out


# --- the simulator -------------------------------------------------------------------------------


class GpSimulator:
    """Dynamics GP SBA REST service on loopback, with real NTLM/Negotiate authentication.

    Args:
        tenant: Tenant name in the URL (``DefaultTenant`` on single-tenant installs).
        companies: Company display names; the first gets the Fabrikam seed data (``seed``).
        seed: Load the sample records of reference into the first company.
        envelope: ``"payload"`` wraps bodies in ``{"Payload": ...}``; ``"bare"`` does not (which one GP uses is unknown).
        list_shape: ``"array"`` (a JSON array) or ``"object"`` (``{"Items": [...], "Count": n}``).
        page_size: Rows per list page with a next link; ``None`` returns whole lists.
        expose_gl: Serve ``Financials/GeneralLedger/Transactions``; False answers 404.
        expose_receipts: Serve ``Purchasing/Receipts`` (not in the documented catalog).
        advertise: Schemes offered on the first 401, in order (whether GP offers NTLM is unknown).
        require_cbt: Demand TLS channel binding (Extended Protection) on HTTPS.
        reauth_per_request: Challenge every request instead of trusting the authenticated connection.
        error_style: ``"json"`` error bodies (a guess at GP's style) or ``"empty"`` bodies.
        clock: Returns "now" as an aware UTC datetime; defaults to the real clock.
    """

    def __init__(
        self,
        *,
        tenant: str = DEFAULT_TENANT,
        companies: Sequence[str] = (DEFAULT_COMPANY,),
        seed: bool = True,
        envelope: str = "payload",
        list_shape: str = "array",
        page_size: int | None = None,
        expose_gl: bool = True,
        expose_receipts: bool = True,
        advertise: Sequence[str] = ("Negotiate", "NTLM"),
        require_cbt: bool = False,
        reauth_per_request: bool = False,
        error_style: str = "json",
        clock: Callable[[], datetime] | None = None,
        key_shapes: Sequence[str] = (),
    ) -> None:
        if not companies:
            raise ValueError("at least one company is needed")
        self._lock = threading.RLock()
        self.tenant = tenant
        # Undocumented key shapes to serve: "gl-date-key" (GL keyed by JournalId and Date, as in
        # GP's Web Services schema) and "receipt-line-key" (the line number under the line's Key).
        unknown = set(key_shapes) - {"gl-date-key", "receipt-line-key"}
        if unknown:
            raise ValueError(f"unknown key shapes {sorted(unknown)}")
        self.key_shapes = frozenset(key_shapes)
        self.clock_skew = timedelta(0)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._last_stamp: datetime | None = None
        self._dir = tempfile.mkdtemp(prefix="gp-sim-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._user_file = os.path.join(self._dir, "ntlm_users")
        self._users: dict[str, _User] = {}
        self._companies: dict[str, _Company] = {}
        for i, name in enumerate(companies):
            # MSDN samples use company ID -1 for the sample company.
            self._companies[name] = _Company(-1 if i == 0 else i + 1, name)
        self.company = companies[0]
        self._faults: FaultQueue[Fault] = FaultQueue(FAULTS)
        self._counters: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self._conn_ids = itertools.count(1)
        self._tls_leaf_der: bytes | None = None
        self.ca_pem: bytes | None = None
        self.ca_path: str | None = None
        self.url: str | None = None
        # settings (see ``configure``)
        self.envelope = "payload"
        self.list_shape = "array"
        self.page_size: int | None = None
        self.expose_gl = True
        self.expose_receipts = True
        self.advertise: tuple[str, ...] = ("Negotiate", "NTLM")
        self.require_cbt = False
        self.reauth_per_request = False
        self.error_style = "json"
        self.configure(
            envelope=envelope, list_shape=list_shape, page_size=page_size, expose_gl=expose_gl,
            expose_receipts=expose_receipts, advertise=advertise, require_cbt=require_cbt,
            reauth_per_request=reauth_per_request, error_style=error_style,
        )
        self.add_user(DEFAULT_USER, DEFAULT_PASSWORD, gp_user="SVCPOLL", companies=companies)
        if seed:
            self._seed_fabrikam(self._companies[companies[0]])

    # --- identity and lifecycle ------------------------------------------------------------------

    @property
    def username(self) -> str:
        """The seeded service account (``DOMAIN\\user``)."""
        return DEFAULT_USER

    @property
    def password(self) -> str:
        """The seeded service account's current password."""
        with self._lock:
            return self._users[DEFAULT_USER.lower()].password

    @property
    def service_url(self) -> str | None:
        """``<url>/GPService`` once served, the base URL a client is given."""
        return f"{self.url}/GPService" if self.url else None

    def close(self) -> None:
        """Delete the simulator's temporary files (user file, CA bundle); safe to call twice."""
        self._finalizer()

    def __enter__(self) -> "GpSimulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tls_context(self) -> ssl.SSLContext:
        """A server TLS context with a fresh ``trustme`` CA; sets ``ca_pem`` and ``ca_path``.

        The leaf certificate names ``localhost`` and ``127.0.0.1``. Clients pass ``ca_path`` as
        ``verify=``; GP installs often use self-signed or internal-CA certificates.
        """
        import trustme  # only needed for TLS; keeps plain-HTTP use free of the dependency

        ca = trustme.CA(organization_name="Contoso Internal CA (simulated)")
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        with self._lock:
            self.ca_pem = ca.cert_pem.bytes()
            self.ca_path = os.path.join(self._dir, "gp-sim-ca.pem")
            with open(self.ca_path, "wb") as fh:
                fh.write(self.ca_pem)
            self._tls_leaf_der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        return ctx

    @contextlib.contextmanager
    def serve(self, *, tls: bool = False, port: int = 0, host: str = "127.0.0.1") -> Iterator[Served]:
        """Serve on loopback until the block exits; sets ``url`` (absolute next links use it)."""
        ctx = self.tls_context() if tls else None
        with serve_on_loopback(self, port=port, host=host, tls=ctx) as served:
            self.url = served.url
            try:
                yield served
            finally:
                self.url = None

    # --- settings --------------------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change response profile and auth knobs at run time; returns the current settings.

        Keys: ``envelope``, ``list_shape``, ``page_size``, ``expose_gl``, ``expose_receipts``,
        ``advertise``, ``require_cbt``, ``reauth_per_request``, ``error_style``.
        """
        checks: dict[str, Callable[[Any], Any]] = {
            "envelope": lambda v: _one_of(v, ("payload", "bare"), "envelope"),
            "list_shape": lambda v: _one_of(v, ("array", "object"), "list_shape"),
            "page_size": _page_size,
            "expose_gl": bool,
            "expose_receipts": bool,
            "advertise": _advertise,
            "require_cbt": bool,
            "reauth_per_request": bool,
            "error_style": lambda v: _one_of(v, ("json", "empty"), "error_style"),
        }
        with self._lock:
            for name, value in settings.items():
                if name not in checks:
                    raise ValueError(f"unknown setting {name!r}")
                setattr(self, name, checks[name](value))
            return self.settings()

    def settings(self) -> dict[str, Any]:
        """The current response profile and auth knobs."""
        with self._lock:
            return {
                "envelope": self.envelope, "list_shape": self.list_shape, "page_size": self.page_size,
                "expose_gl": self.expose_gl, "expose_receipts": self.expose_receipts,
                "advertise": list(self.advertise), "require_cbt": self.require_cbt,
                "reauth_per_request": self.reauth_per_request, "error_style": self.error_style,
            }

    # --- users and access ------------------------------------------------------------------------

    def add_user(
        self, principal: str, password: str, *, gp_user: str | None = None, companies: Sequence[str] = ()
    ) -> None:
        """Add (or replace) a Windows account, its GP user mapping and its company access.

        ``gp_user=None`` leaves the account unmapped, so it authenticates but gets 403.
        """
        domain, sep, name = principal.partition("\\")
        if not sep or not domain or not name:
            raise ValueError("principal must look like DOMAIN\\user")
        _check_secret(password)
        with self._lock:
            unknown = [c for c in companies if c not in self._companies]
            if unknown:
                raise ValueError(f"unknown companies {unknown}")
            old = self._users.get(principal.lower())
            self._users[principal.lower()] = _User(
                principal, password, gp_user, set(companies), (old.epoch + 1) if old else 0
            )
            self._write_user_file()

    def set_password(self, principal: str, password: str) -> None:
        """Change an account's password; its authenticated connections must log on again."""
        _check_secret(password)
        with self._lock:
            user = self._user(principal)
            user.password = password
            user.epoch += 1
            self._write_user_file()

    def set_company_access(self, principal: str, companies: Sequence[str], *, gp_user: str | None = None) -> None:
        """Replace the companies an account's GP user may open (User Access Setup)."""
        with self._lock:
            user = self._user(principal)
            unknown = [c for c in companies if c not in self._companies]
            if unknown:
                raise ValueError(f"unknown companies {unknown}")
            user.companies = set(companies)
            if gp_user is not None:
                user.gp_user = gp_user

    def _user(self, principal: str) -> _User:
        try:
            return self._users[principal.lower()]
        except KeyError:
            raise KeyError(f"no user {principal!r}") from None

    def _write_user_file(self) -> None:
        # Heimdal format DOMAIN:USER:PASSWORD, read by pyspnego's acceptor.
        lines = []
        for u in self._users.values():
            domain, _, name = u.principal.partition("\\")
            lines.append(f"{domain}:{name}:{u.password}\n")
        tmp = self._user_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.replace(tmp, self._user_file)

    # --- faults and counters ---------------------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, path: str | None = None, status: int = 503,
               seconds: float = 1.0) -> None:
        """Make the next ``times`` matching API requests fail (``simulators/_faults.py`` says what
        each kind does): ``status`` (GP's JSON error body with ``status``: 503, 500, 403, ...),
        ``html``, ``truncated``, ``drop``, ``delay``, or ``auth_401`` (the handshake completes
        with the right password but the answer is a final 401). ``path``: only requests whose
        decoded path contains this text.
        """
        self._faults.add(Fault(kind, times, path, status, seconds))

    def clear_faults(self) -> None:
        """Forget every injected fault that has not fired yet."""
        self._faults.clear()

    def counters(self) -> dict[str, int]:
        """A snapshot of the request counters.

        Keys include ``requests``, ``api``, ``control``, ``challenges`` (leg-1 401s),
        ``handshake_legs`` (type-1/type-3 messages), ``logons``, ``auth_failures``, ``forbidden``,
        ``faults``, ``status_<code>`` and ``GET <resource path>``.
        """
        with self._lock:
            return dict(self._counters)

    def reset_counters(self) -> None:
        """Zero the counters and clear the request log."""
        with self._lock:
            self._counters.clear()
            self._log.clear()

    def requests(self) -> list[dict[str, Any]]:
        """The recent request log: ``conn`` (connection number), method, path, status, user."""
        with self._lock:
            return list(self._log)

    # --- clock -----------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        return now.astimezone(timezone.utc) + self.clock_skew

    def set_clock_skew(self, skew: timedelta) -> None:
        """Stamp ``ModifiedDate`` this far off real time (a server clock glitch), or put it right
        with ``timedelta(0)``: then stamps are real time again, earlier than the glitch's."""
        with self._lock:
            self.clock_skew = skew
            self._last_stamp = None

    def _stamp(self) -> str:
        """A strictly increasing UTC ``ModifiedDate`` (DEX_ROW_TS semantics)."""
        now = self._now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return _ts(now)

    def _co(self, company: str | None) -> _Company:
        name = company or self.company
        try:
            return self._companies[name]
        except KeyError:
            raise KeyError(f"no company {name!r}") from None

    # --- vendors ---------------------------------------------------------------------------------

    def add_vendor(
        self,
        vendor_id: str,
        name: str,
        *,
        class_id: str = "USA-US-I",
        city: str = "",
        state: str = "",
        country: str = "USA",
        phone: str = "",
        terms: str = "Net 30",
        currency: str = CURRENCY,
        on_hold: bool = False,
        active: bool = True,
        approval: str = "Approved",
        company: str | None = None,
    ) -> dict[str, Any]:
        """Create a vendor (PM00200); returns its JSON body."""
        with self._lock:
            co = self._co(company)
            if co.tables["vendors"].get((vendor_id,)) is not None:
                raise ValueError(f"vendor {vendor_id!r} already exists")
            stamp = self._stamp()
            row = _vendor_row(
                vendor_id, name, class_id, city, state, country, phone, terms, currency, on_hold, active,
                approval, created=_day(self._now()), modified=stamp,
            )
            co.tables["vendors"].put(row)
            return _public(row)

    def update_vendor(self, vendor_id: str, *, company: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change a vendor: ``name``, ``class_id``, ``city``, ``state``, ``country``, ``phone``,
        ``terms``, ``currency``, ``on_hold``, ``active``, ``approval``. Stamps ``ModifiedDate``."""
        setters: dict[str, Callable[[dict[str, Any], Any], None]] = {
            "name": lambda r, v: r.__setitem__("Name", str(v)),
            "class_id": lambda r, v: r["ClassKey"].__setitem__("Id", str(v)),
            "city": lambda r, v: r.__setitem__("City", str(v)),
            "state": lambda r, v: r.__setitem__("State", str(v)),
            "country": lambda r, v: r.__setitem__("CountryRegion", str(v)),
            "phone": lambda r, v: r.__setitem__("PhoneNumbers", [{"Value": str(v)}] if v else []),
            "terms": lambda r, v: r["PaymentTermsKey"].__setitem__("Id", str(v)),
            "currency": lambda r, v: r["CurrencyKey"].__setitem__("Id", str(v)),
            "on_hold": lambda r, v: r.__setitem__("IsOnHold", bool(v)),
            "active": lambda r, v: r.__setitem__("IsActive", bool(v)),
            "approval": lambda r, v: r.__setitem__("WorkflowApprovalStatus", str(v)),
        }
        unknown = set(changes) - set(setters)
        if unknown:
            raise ValueError(f"unknown vendor fields {sorted(unknown)}")
        with self._lock:
            row = self._co(company).tables["vendors"].get((vendor_id,))
            if row is None:
                raise KeyError(f"no vendor {vendor_id!r}")
            for name, value in changes.items():
                setters[name](row, value)
            row["ModifiedDate"] = self._stamp()
            return _public(row)

    # --- payables --------------------------------------------------------------------------------

    def add_invoice(
        self,
        vendor_id: str,
        document_number: str,
        amount: Any,
        *,
        doc_date: Any = None,
        due_date: Any = None,
        batch: str = "AP-SIM",
        posted: bool = False,
        on_hold: bool = False,
        workflow_status: str = "Not Submitted",
        po_number: str = "",
        company: str | None = None,
    ) -> str:
        """Enter a payables invoice: unposted (work, PM10000) unless ``posted``; returns the voucher."""
        with self._lock:
            co = self._co(company)
            vendor = co.tables["vendors"].get((vendor_id,))
            if vendor is None:
                raise KeyError(f"no vendor {vendor_id!r}")
            voucher = f"{co.next_voucher:017d}"
            co.next_voucher += 1
            today = self._now().date()
            d = _parse_day(doc_date, today)
            row = _payables_row(
                voucher, 1, vendor, document_number, Decimal(str(amount)), d, _parse_day(due_date, d + timedelta(30)),
                state="Open" if posted else "Work", batch=batch, on_hold=on_hold, workflow=workflow_status,
                po_number=po_number, posted_date=_day(today) if posted else None, modified=self._stamp(),
            )
            co.tables["payables"].put(row)
            return voucher

    def add_drafts(self, n: int, *, batch: str = "AP-DRAFTS", company: str | None = None) -> list[str]:
        """Enter ``n`` unposted invoices in ``batch`` (varied vendors and amounts); returns vouchers."""
        with self._lock:
            co = self._co(company)
            vendors = [v for v in co.tables["vendors"].rows() if v["IsActive"]]
            if not vendors:
                raise ValueError("no active vendors")
            out = []
            for i in range(int(n)):
                v = vendors[i % len(vendors)]
                amount = Decimal(1000 + (i * 7919) % 250000) / 100
                out.append(
                    self.add_invoice(
                        v["Key"]["Id"], f"DRAFT-{co.next_voucher:05d}", amount, batch=batch,
                        workflow_status="Pending Approval", company=co.name,
                    )
                )
            return out

    def post_batch(self, batch: str, *, company: str | None = None) -> list[str]:
        """Post a payables batch: its work documents move to open (PM10000 → PM20000)."""
        with self._lock:
            co = self._co(company)
            posted = []
            today = _day(self._now())
            for row in co.tables["payables"].rows():
                if row["BatchKey"]["Id"] == batch and row["TransactionState"] == "Work":
                    row["TransactionState"] = "Open"
                    row["PostedDate"] = today
                    row["PostedBy"] = "sa"
                    row["ModifiedDate"] = self._stamp()
                    posted.append(row["Key"]["Id"])
            if not posted:
                raise ValueError(f"batch {batch!r} has no unposted documents")
            return posted

    def pay_invoice(self, voucher: str, *, company: str | None = None) -> str:
        """Pay an open invoice in full: it moves to history with a zero balance (PM20000 → PM30200),
        and a payment document (type 6) is created; returns the payment's voucher."""
        with self._lock:
            co = self._co(company)
            row = co.tables["payables"].get((1, voucher))
            if row is None:
                raise KeyError(f"no invoice {voucher!r}")
            if row["TransactionState"] != "Open":
                raise ValueError(f"invoice {voucher} is {row['TransactionState']}, not Open")
            vendor = co.tables["vendors"].get((row["VendorKey"]["Id"],)) or _vendor_stub(row)
            pay_voucher = f"{co.next_voucher:017d}"
            co.next_voucher += 1
            today = self._now().date()
            payment = _payables_row(
                pay_voucher, 6, vendor, f"{co.next_voucher:017d}", row["DocumentAmount"]["Value"], today, None,
                state="History", batch="PM_Payment", on_hold=False, workflow="No Approval Needed", po_number="",
                posted_date=_day(today), modified=self._stamp(), currency=row["DocumentAmount"]["Currency"],
            )
            payment["CurrentTrxAmount"]["Value"] = Decimal("0.00")
            co.tables["payables"].put(payment)
            row["TransactionState"] = "History"
            row["CurrentTrxAmount"]["Value"] = Decimal("0.00")
            row["ModifiedDate"] = self._stamp()
            return pay_voucher

    def update_invoice(
        self,
        voucher: str,
        *,
        on_hold: bool | None = None,
        workflow_status: str | None = None,
        due_date: Any = None,
        company: str | None = None,
    ) -> dict[str, Any]:
        """Put an invoice on or off hold, change its workflow status or due date."""
        with self._lock:
            row = self._co(company).tables["payables"].get((1, voucher))
            if row is None:
                raise KeyError(f"no invoice {voucher!r}")
            if on_hold is not None:
                row["OnHold"] = bool(on_hold)
            if workflow_status is not None:
                row["WorkflowStatus"] = str(workflow_status)
            if due_date is not None:
                row["DueDate"] = _day(_parse_day(due_date, self._now().date()))
            row["ModifiedDate"] = self._stamp()
            return _public(row)

    # --- purchase orders and receipts ------------------------------------------------------------

    def add_po(
        self,
        vendor_id: str,
        lines: Sequence[Any],
        *,
        po_number: str | None = None,
        buyer: str = "",
        approval: Any = 1,
        order_date: Any = None,
        required_date: Any = None,
        company: str | None = None,
    ) -> str:
        """Create a New purchase order (POP10100/POP10110); returns its number.

        ``lines`` holds ``(item, description, quantity, unit_cost)`` tuples or dicts with those keys.
        """
        with self._lock:
            co = self._co(company)
            vendor = co.tables["vendors"].get((vendor_id,))
            if vendor is None:
                raise KeyError(f"no vendor {vendor_id!r}")
            if po_number is None:
                po_number = f"PO{co.next_po}"
                co.next_po += 1
            if co.tables["purchase_orders"].get((po_number,)) is not None:
                raise ValueError(f"PO {po_number!r} already exists")
            today = self._now().date()
            d = _parse_day(order_date, today)
            parsed = [_line_tuple(x) for x in lines]
            if not parsed:
                raise ValueError("a purchase order needs at least one line")
            row = _po_row(
                po_number, vendor, 1, _status_code(approval, _APPROVAL_CODES, "approval status"), d,
                _parse_day(required_date, d + timedelta(14)), buyer, parsed, created=_day(today),
                modified=self._stamp(),
            )
            co.tables["purchase_orders"].put(row)
            return po_number

    def set_po_status(self, po_number: str, status: Any, *, company: str | None = None) -> dict[str, Any]:
        """Move a PO along New → Released → (Change Order) → Received → Closed, or to Canceled.

        ``status`` is the code (1–6) or its name. An illegal move raises ``ValueError`` (HTTP 409).
        """
        code = _status_code(status, {v.lower(): k for k, v in PO_STATUS.items()}, "PO status")
        with self._lock:
            row = self._co(company).tables["purchase_orders"].get((po_number,))
            if row is None:
                raise KeyError(f"no purchase order {po_number!r}")
            current = row["Status"]
            if code not in _PO_MOVES[current]:
                raise ValueError(f"PO {po_number} cannot go from {PO_STATUS[current]} to {PO_STATUS[code]}")
            row["Status"] = code
            if code in (5, 6):
                row["TransactionState"] = "History"  # closed/canceled POs move to POP30100
            if code == 3:
                row["RevisionNumber"] += 1
            row["ModifiedDate"] = self._stamp()
            return _public(row)

    def set_po_approval(self, po_number: str, approval: Any, *, company: str | None = None) -> dict[str, Any]:
        """Set a PO's workflow approval status (code 1–10 or name)."""
        code = _status_code(approval, _APPROVAL_CODES, "approval status")
        with self._lock:
            row = self._co(company).tables["purchase_orders"].get((po_number,))
            if row is None:
                raise KeyError(f"no purchase order {po_number!r}")
            row["WorkflowApprovalStatus"] = code
            row["ModifiedDate"] = self._stamp()
            return _public(row)

    def receive_po(
        self,
        po_number: str,
        *,
        receipt_number: str | None = None,
        vendor_document: str = "",
        posted: bool = True,
        company: str | None = None,
    ) -> str:
        """Receive every line of a Released PO: a receipt is created and the PO becomes Received."""
        with self._lock:
            co = self._co(company)
            po = co.tables["purchase_orders"].get((po_number,))
            if po is None:
                raise KeyError(f"no purchase order {po_number!r}")
            if po["Status"] not in (2, 3):
                raise ValueError(f"PO {po_number} is {PO_STATUS[po['Status']]}; only Released POs are received")
            if receipt_number is None:
                receipt_number = f"RCT{co.next_receipt}"
                co.next_receipt += 1
            if co.tables["receipts"].get((receipt_number,)) is not None:
                raise ValueError(f"receipt {receipt_number!r} already exists")
            today = self._now().date()
            vendor = co.tables["vendors"].get((po["VendorKey"]["Id"],)) or _vendor_stub(po)
            lines = [
                (po_number, ln["ItemKey"]["Id"], ln["ItemDescription"], ln["QuantityOrdered"], ln["UnitCost"]["Value"],
                 ln["SiteKey"]["Id"])
                for ln in po["Lines"]
            ]
            row = _receipt_row(
                receipt_number, vendor, vendor_document or f"PS-{receipt_number}", today,
                "History" if posted else "Work", lines, voucher="",
            )
            co.tables["receipts"].put(row)
            po["Status"] = 4
            po["RemainingSubtotal"]["Value"] = Decimal("0.00")
            po["ModifiedDate"] = self._stamp()
            return receipt_number

    # --- general ledger --------------------------------------------------------------------------

    def post_gl_entry(
        self,
        lines: Sequence[Any],
        *,
        reference: str = "",
        source: str = "GJ",
        trx_date: Any = None,
        posted: bool = True,
        company: str | None = None,
    ) -> int:
        """Enter a journal entry, posted (GL20000) unless ``posted=False`` (GL10000); returns its number.

        ``lines`` holds ``(account, debit, credit[, description])`` tuples or dicts with those
        keys. Debits must equal credits.
        """
        parsed = [_gl_line(x) for x in lines]
        if len(parsed) < 2:
            raise ValueError("a journal entry needs at least two lines")
        debit = sum((x[1] for x in parsed), Decimal(0))
        credit = sum((x[2] for x in parsed), Decimal(0))
        if debit != credit:
            raise ValueError(f"journal entry does not balance: debits {debit} != credits {credit}")
        with self._lock:
            co = self._co(company)
            jid = co.next_journal
            co.next_journal += 1
            d = _parse_day(trx_date, self._now().date())
            row = _gl_row(
                jid, d, source, reference or "General journal entry", "Open" if posted else "Work", parsed,
                modified=self._stamp(), posted_date=self._now().date() if posted else None,
            )
            co.tables["gl"].put(row)
            return jid

    def void_gl_entry(self, journal_id: int, *, year: int | None = None, company: str | None = None) -> int:
        """Void a posted entry: a new reversing entry is posted and the original is flagged
        ``IsVoided`` (its content stays as it was); returns the new entry's number."""
        return self._reverse_gl(journal_id, year, company, back_out=False)

    def back_out_gl_entry(self, journal_id: int, *, year: int | None = None, company: str | None = None) -> int:
        """Back out a posted entry: a new reversing entry, and ``BackOutJournalId`` on the original."""
        return self._reverse_gl(journal_id, year, company, back_out=True)

    def _reverse_gl(self, journal_id: int, year: int | None, company: str | None, *, back_out: bool) -> int:
        with self._lock:
            co = self._co(company)
            matches = [
                r for r in co.tables["gl"].rows()
                if int(r["Key"]["JournalId"]) == int(journal_id)
                and (year is None or int(r["Key"]["Year"]) == int(year))
            ]
            if not matches:
                raise KeyError(f"no journal entry {journal_id}")
            orig = matches[-1]
            if orig["TransactionState"] == "Work":
                raise ValueError(f"journal entry {journal_id} is not posted")
            if orig["IsVoided"] or orig["BackOutJournalId"]:
                raise ValueError(f"journal entry {journal_id} was already reversed")
            lines = [
                (ln["GLAccountKey"]["Id"], ln["CreditAmount"]["Value"], ln["DebitAmount"]["Value"], ln["Description"])
                for ln in orig["Lines"]
            ]
            jid = co.next_journal
            co.next_journal += 1
            verb = "Back out of" if back_out else "Void of"
            today = self._now().date()
            row = _gl_row(
                jid, today, orig["SourceDocumentKey"]["Id"], f"{verb} JE {journal_id}", "Open", lines,
                modified=self._stamp(), posted_date=today,
            )
            row["OriginalJournalId"] = int(journal_id)
            co.tables["gl"].put(row)
            if back_out:
                orig["BackOutJournalId"] = jid
            else:
                orig["IsVoided"] = True
            # Flags on the original change, so its newest line timestamp does too.
            orig["ModifiedDate"] = self._stamp()
            return jid

    # --- bulk data -------------------------------------------------------------------------------

    def generate(self, kind: str, n: int, *, start: Any = None, company: str | None = None) -> int:
        """Add ``n`` synthetic rows to ``kind`` (a resource name: ``vendors``, ``payables``,
        ``purchase_orders``, ``receipts``, ``gl``); returns the resource's total row count.

        The rows are made on demand from their number, page by page, so a million of them cost no
        memory. Their ``ModifiedDate`` runs 1 ms apart from ``start`` (default: one day ago). They
        are listed after the ordinary rows and cannot be fetched one by one.
        """
        if kind not in _BY_NAME:
            raise ValueError(f"unknown resource {kind!r}; one of {sorted(_BY_NAME)}")
        n = int(n)
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            co = self._co(company)
            total = self._total(co, kind) + n
            if self.page_size is None and total > MAX_UNPAGED_ROWS:
                raise ValueError(f"{total} rows need paging: configure(page_size=...) first")
            base = self._now() - timedelta(days=1) if start is None else _aware(start)
            first = sum(b.count for b in co.bulk[kind])
            co.bulk[kind].append(_Bulk(first, n, base))
            return total

    def _total(self, co: _Company, kind: str) -> int:
        return len(co.tables[kind]) + sum(b.count for b in co.bulk[kind])

    # --- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request (the ``simulators._http`` app protocol)."""
        if "id" not in request.conn:  # numbered once per keep-alive connection
            request.conn["id"] = next(self._conn_ids)
        conn_id = request.conn["id"]
        with self._lock:
            self._counters["requests"] += 1
        if request.path.startswith("/__sim/"):
            with self._lock:
                self._counters["control"] += 1
            return self._control(request)
        with self._lock:
            self._counters["api"] += 1
        user_box: list[str | None] = [None]
        resp = self._api(request, user_box)
        with self._lock:
            self._counters[f"status_{resp.status}"] += 1
            self._log.append({
                "conn": conn_id, "method": request.method, "path": unquote(request.path),
                "status": resp.status, "user": user_box[0],
                "authorization": request.headers.get("authorization", "").split(" ")[0] or None,
            })
        return resp

    def _api(self, req: Request, user_box: list[str | None]) -> Response:
        if not req.path.startswith("/GPService/"):
            return Response(404, b"", {"Content-Type": "text/plain"})
        auth = self._authenticate(req)
        if isinstance(auth, Response):
            return auth
        user, auth_headers = auth
        user_box[0] = user.principal
        resp = self._authorised(req, user)
        resp.headers.update(auth_headers)
        return resp

    def _authorised(self, req: Request, user: _User) -> Response:
        try:
            route = _parse_route(req.path)
        except ValueError as exc:
            return self._error(400, "GP.BadRequest", str(exc))
        if route.tenant != self.tenant:
            return self._error(404, "GP.NotFound", f"Tenant '{route.tenant}' was not found.")
        if route.tail == "help":
            return self._help()
        if user.gp_user is None:
            with self._lock:
                self._counters["forbidden"] += 1
            return self._error(403, "GP.Forbidden", f"'{user.principal}' is not mapped to a Dynamics GP user.")
        if route.tail == "Companies":
            return self._companies_list(user)
        assert route.company is not None
        if route.company not in self._companies:
            return self._error(404, "GP.NotFound", f"Company '{route.company}' was not found.")
        if route.company not in user.companies:
            with self._lock:
                self._counters["forbidden"] += 1
            return self._error(
                403, "GP.Forbidden", f"User '{user.gp_user}' does not have access to company '{route.company}'."
            )
        fault = self._take_fault(unquote(req.path), exclude=("auth_401",))
        if fault is not None and fault.kind in ("status", "drop", "html"):
            return self._fault_response(fault)
        resp = self._resource(req, route)
        if fault is not None and fault.kind == "delay":
            resp.delay = fault.seconds
        elif fault is not None and fault.kind == "truncated":
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
        return resp

    def _resource(self, req: Request, route: _Route) -> Response:
        if route.unknown is not None or route.resource is None:
            return self._error(404, "GP.NotFound", f"Resource '{route.unknown}' was not found.")
        res = route.resource
        if res.switch is not None and not getattr(self, res.switch):
            # The site does not expose this resource (GL is outside the SBA catalog).
            return self._error(404, "GP.NotFound", f"Resource '{res.path}' was not found.")
        if req.method != "GET":
            return self._error(405, "GP.MethodNotAllowed", f"{req.method} is not supported here.")
        with self._lock:
            self._counters[f"GET {res.path}"] += 1
            co = self._companies[route.company or self.company]
            if route.key is not None:
                return self._one(co, res, route.key)
            return self._list(co, res, req)

    def _one(self, co: _Company, res: _Resource, key: tuple[str, ...]) -> Response:
        if len(key) != res.key_parts:
            return self._error(400, "GP.BadRequest", f"{res.path} takes {res.key_parts} key part(s).")
        try:
            if res.name == "payables":
                lookup: tuple = (_status_code(key[0], _DOC_TYPE_CODES, "document type"), key[1])
            elif res.name == "gl":
                lookup = (int(key[0]), int(key[1]))
            else:
                lookup = (key[0],)
        except ValueError as exc:
            return self._error(400, "GP.BadRequest", str(exc))
        row = co.tables[res.name].get(lookup)
        if row is None:
            return self._error(404, "GP.NotFound", f"'{';'.join(key)}' was not found in {res.path}.")
        body = _strip(row)
        return self._json({"Payload": body} if self.envelope == "payload" else body)

    def _list(self, co: _Company, res: _Resource, req: Request) -> Response:
        # Only the simulator's own paging token is read; filters such as $filter or
        # ModifiedSince are ignored on purpose (no evidence SBA supports them).
        token_text = req.query.get("$skiptoken")
        try:
            token = _token_decode(token_text) if token_text else None
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return self._error(400, "GP.BadRequest", "The paging token is not valid.")
        size = self.page_size
        if size is None and self._total(co, res.name) > MAX_UNPAGED_ROWS:
            return self._error(500, "GP.SystemError", "Simulator: too many rows for an unpaged list; set page_size.")
        rows_iter = self._positions(co, res.name, token)
        taken = list(itertools.islice(rows_iter, (size + 1) if size else None))
        next_url = None
        if size is not None and len(taken) > size:
            taken = taken[:size]
            next_url = self._link(req.path, _token_encode(taken[-1][0]))
        items = [self._reshape(res.name, _strip(row)) for _, row in taken]
        body, headers = self._wrap_list(items, next_url)
        return self._json(body, headers=headers)

    def _reshape(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """Key shapes GP may use that its REST service does not document (``key_shapes``)."""
        if table == "gl" and "gl-date-key" in self.key_shapes and isinstance(row.get("Key"), dict):
            key = dict(row["Key"])
            key.pop("Year", None)
            key["Date"] = row.get("TransactionDate")
            row = {**row, "Key": key}
        if table == "receipts" and "receipt-line-key" in self.key_shapes:
            row = {**row, "Lines": [
                {**{k: v for k, v in ln.items() if k != "LineNumber"}, "Key": {"LineNumber": ln.get("LineNumber")}}
                for ln in row.get("Lines") or []
            ]}
        return row

    def _positions(
        self, co: _Company, name: str, token: list[Any] | None
    ) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """(position, row) from just after ``token``: ordinary rows in key order, then bulk rows."""
        start_block, start_index = 0, 0
        if token is None or token[0] == "e":
            after = tuple(token[1]) if token else None
            for key, row in co.tables[name].after(after):
                yield ["e", list(key)], row
        else:
            start_block, start_index = int(token[1]), int(token[2]) + 1
        blocks = co.bulk[name]
        for b in range(start_block, len(blocks)):
            block = blocks[b]
            for i in range(start_index if b == start_block else 0, block.count):
                yield ["b", b, i], _bulk_row(name, co, block.first + i, block.base + timedelta(milliseconds=i))

    def _link(self, path: str, token: str) -> str:
        rel = f"{path}?$skiptoken={token}"
        return f"{self.url}{rel}" if self.url else rel

    def _wrap_list(self, items: list[dict[str, Any]], next_url: str | None) -> tuple[Any, dict[str, str]]:
        headers: dict[str, str] = {}
        body: Any
        if self.list_shape == "object":
            body = {"Items": items, "Count": len(items)}
            if next_url:
                body["NextLink"] = next_url
        else:
            body = items
        if self.envelope == "payload":
            wrapped: dict[str, Any] = {"Payload": body}
            if next_url and isinstance(body, list):
                wrapped["Links"] = [{"Rel": "next", "Href": next_url}]
            body = wrapped
        if next_url and isinstance(body, list):
            headers["Link"] = f'<{next_url}>; rel="next"'
        return body, headers

    def _companies_list(self, user: _User) -> Response:
        with self._lock:
            items = [
                {"Key": {"Id": co.id}, "Name": co.name}
                for co in self._companies.values()
                if co.name in user.companies
            ]
        body, headers = self._wrap_list(items, None)
        return self._json(body, headers=headers)

    def _help(self) -> Response:
        rows = "".join(
            f"<li>GET Companies({{company}})/{r.path}[({';'.join('{key}' for _ in range(r.key_parts))})]</li>"
            for r in RESOURCES
        )
        html = (
            "<!DOCTYPE html><html><head><title>Microsoft Dynamics GP Service (simulated)</title></head>"
            f"<body><h1>Dynamics GP Service: {self.tenant}</h1><ul>{rows}</ul></body></html>"
        )
        return Response(200, html.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _json(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        return Response(status, _dumps(body), h)

    def _error(self, status: int, code: str, message: str) -> Response:
        # Error body shape is a simulator convention (unknown for real SBA); "empty" mimics
        # HTTP.sys-style empty bodies so clients cope with both.
        if self.error_style == "empty":
            return Response(status, b"", {"Content-Type": "text/plain"})
        return self._json({"ErrorCode": code, "Message": message, "CorrelationId": str(uuid.uuid4())}, status)

    # --- faults ----------------------------------------------------------------------------------

    def _peek_fault(self, path: str, kind: str) -> bool:
        return self._faults.find(lambda f: f.kind == kind and f.matches(path)) is not None

    def _take_fault(self, path: str, *, only: Sequence[str] = (), exclude: Sequence[str] = ()) -> Fault | None:
        f = self._faults.take(lambda f: not ((only and f.kind not in only) or f.kind in exclude or not f.matches(path)))
        if f is not None:
            with self._lock:
                self._counters["faults"] += 1
                self._counters[f"fault_{f.status if f.kind == 'status' else f.kind}"] += 1
        return f

    def _fault_response(self, f: Fault) -> Response:
        if f.kind == "drop":
            return Response(drop=True)
        if f.kind == "html":
            # What a reverse proxy or an IIS error page looks like: HTML with status 200.
            page = b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>" \
                b"<h1>The service is temporarily unavailable.</h1></body></html>"
            return Response(200, page, {"Content-Type": "text/html; charset=utf-8"})
        if f.status == 503:
            return self._error(503, "GP.ServiceUnavailable", "The Dynamics GP service is not available.")
        if f.status == 403:
            return self._error(403, "GP.Forbidden", "Access to this resource is denied.")
        # System exceptions carry a generic "contact your administrator" message.
        return self._error(f.status, "GP.SystemError", "The system encountered an error. Contact your administrator.")

    # --- NTLM / Negotiate ------------------------------------------------------------------------

    def _challenge(self) -> Response:
        """The leg-1 401: empty body, one ``WWW-Authenticate`` line per advertised scheme."""
        return Response(401, b"", _header_variants("WWW-Authenticate", self.advertise))

    def _acceptor(self, scheme: str) -> Any:
        import spnego  # the acceptor is pyspnego's pure-Python NTLM
        from spnego.channel_bindings import GssChannelBindings

        cbt = None
        if self.require_cbt and self._tls_leaf_der is not None:
            # tls-server-end-point binding: SHA-256 of the server certificate (RFC 5929).
            cbt = GssChannelBindings(
                application_data=b"tls-server-end-point:" + hashlib.sha256(self._tls_leaf_der).digest()
            )
        protocol = "ntlm" if scheme.lower() == "ntlm" else "negotiate"
        return spnego.server(hostname="localhost", service="HTTP", channel_bindings=cbt, protocol=protocol)

    def _authenticate(self, req: Request) -> Response | tuple[_User, dict[str, str]]:
        conn = req.conn
        header = req.headers.get("authorization", "").strip()
        if not header:
            principal = conn.get("principal")
            if principal is not None and not self.reauth_per_request:
                with self._lock:
                    user = self._users.get(principal.lower())
                    fresh = user is not None and user.epoch == conn.get("epoch")
                    # A pending "401 after the handshake" fault makes an authenticated connection
                    # log on again, so the fault can fail that logon's last leg.
                    pending = self._peek_fault(unquote(req.path), "auth_401")
                if fresh and not pending:
                    return user, {}  # type: ignore[return-value]
                conn.pop("principal", None)
            with self._lock:
                self._counters["challenges"] += 1
            return self._challenge()
        scheme, _, blob = header.partition(" ")
        offered = next((a for a in self.advertise if a.lower() == scheme.lower()), None)
        if offered is None:
            with self._lock:
                self._counters["challenges"] += 1
            return self._challenge()  # e.g. Basic: not offered, challenge again
        try:
            token = base64.b64decode(blob.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._auth_failed(conn)
        with self._lock:
            self._counters["handshake_legs"] += 1
        ctx = conn.get("ctx")
        try:
            # Building the acceptor also needs NTLM_USER_FILE (pyspnego checks it up front).
            with _ntlm_user_file(self._user_file):
                if ctx is None or _is_ntlm_negotiate(token):
                    ctx = self._acceptor(offered)
                out = ctx.step(token)
        except Exception:  # noqa: BLE001 - any acceptor error (bad password, garbage token) is a failed logon
            return self._auth_failed(conn)
        if not ctx.complete:
            conn["ctx"] = ctx
            # Leg 2: the challenge, under the scheme the client chose.
            return Response(401, b"", {"WWW-Authenticate": f"{offered} {base64.b64encode(out or b'').decode()}"})
        conn.pop("ctx", None)
        principal = str(ctx.client_principal or "")
        with self._lock:
            user = self._users.get(principal.lower())
        if user is None:
            return self._auth_failed(conn)
        if self._take_fault(unquote(req.path), only=("auth_401",)) is not None:
            return self._auth_failed(conn)
        conn["principal"] = user.principal
        conn["epoch"] = user.epoch
        with self._lock:
            self._counters["logons"] += 1
        extra = {}
        if out:
            # SPNEGO sends a last token (mechListMIC) back with the success.
            extra["WWW-Authenticate"] = f"{offered} {base64.b64encode(out).decode()}"
        return user, extra

    def _auth_failed(self, conn: dict[str, Any]) -> Response:
        conn.pop("ctx", None)
        conn.pop("principal", None)
        with self._lock:
            self._counters["auth_failures"] += 1
        # A failed last leg answers 401 with fresh challenge headers.
        return self._challenge()

    # --- control API over HTTP -------------------------------------------------------------------

    _CONTROL = frozenset({
        "configure", "settings", "add_user", "set_password", "set_company_access", "inject", "clear_faults",
        "counters", "reset_counters", "requests", "add_vendor", "update_vendor", "add_invoice", "add_drafts",
        "post_batch", "pay_invoice", "update_invoice", "add_po", "set_po_status", "set_po_approval",
        "receive_po", "post_gl_entry", "void_gl_entry", "back_out_gl_entry", "generate",
    })

    def _control(self, req: Request) -> Response:
        name = req.path[len("/__sim/"):].strip("/")
        if name not in self._CONTROL:
            return _control_error(404, f"unknown control call {name!r}")
        try:
            kwargs = req.json() or {}
        except (ValueError, UnicodeDecodeError):
            return _control_error(400, "body must be a JSON object of keyword arguments")
        if not isinstance(kwargs, dict):
            return _control_error(400, "body must be a JSON object of keyword arguments")
        try:
            result = getattr(self, name)(**kwargs)
        except KeyError as exc:
            return _control_error(404, str(exc.args[0]) if exc.args else "not found")
        except (ValueError, TypeError) as exc:
            return _control_error(409, str(exc))
        return Response(200, _dumps({"ok": True, "result": result}), {"Content-Type": "application/json"})

    # --- seed data -------------------------------------------------------------------------------

    def _seed_fabrikam(self, co: _Company) -> None:
        """Sample records of reference (IDs styled after Fabrikam; other values illustrative)."""
        vendors = [
            ("ACETRAVE0001", "A Travel Company", "USA-US-I", "Chicago", "IL", "USA", "31255501010000", False, True,
             "2017-04-12", "2024-03-14T15:22:07.123Z"),
            ("ADVANCED0001", "Advanced Office Systems", "USA-US-I", "Boston", "MA", "USA", "61755501230000", False,
             True, "2017-04-12", "2024-02-02T09:10:44.500Z"),
            ("ASSOCIAT0001", "Associated Insurance Company", "USA-US-M", "Minneapolis", "MN", "USA",
             "61255501770000", True, True, "2018-01-09", "2024-03-15T08:01:00.000Z"),
            ("CENTRALC0001", "Central Communications LTD", "USA-US-I", "Denver", "CO", "USA", "30355500990000",
             False, True, "2018-06-21", "2024-01-18T11:45:12.000Z"),
            ("SMITHSON0001", "Smith & Sons Freight", "USA-US-I", "Fargo", "ND", "USA", "70155503330000", False,
             True, "2019-02-11", "2024-02-20T16:02:55.250Z"),
            ("NORDICSU0001", "Nordic Süpply AB", "INTL", "Göteborg", "", "SWE", "46315550100", False, True,
             "2020-09-01", "2024-03-01T07:30:00.000Z"),
            ("OLDPRINT0001", "Old Printing House", "USA-US-I", "Fargo", "ND", "USA", "", False, False,
             "2016-05-03", "2023-11-30T13:00:00.000Z"),
        ]
        for vid, name, cls, city, st, country, phone, hold, active, created, modified in vendors:
            currency = "Z-EURO" if country == "SWE" else CURRENCY
            co.tables["vendors"].put(_vendor_row(
                vid, name, cls, city, st, country, phone, "Net 30", currency, hold, active, "Approved",
                created=f"{created}T00:00:00", modified=modified,
            ))
        v = {r["Key"]["Id"]: r for r in co.tables["vendors"].rows()}
        invoices = [
            # voucher, type, vendor, doc no, amount, balance, doc date, due, state, batch, hold, workflow, po, modified
            ("00000000000000655", 1, "ACETRAVE0001", "TRV-5521", "842.10", "842.10", "2024-03-15", "2024-04-14",
             "Work", "AP-0315", False, "Pending Approval", "", "2024-03-15T10:12:30.000Z"),
            ("00000000000000641", 1, "ADVANCED0001", "INV-88213", "1287.50", "1287.50", "2024-03-13", "2024-04-12",
             "Open", "AP-0314", False, "Approved", "PO2107", "2024-03-14T15:40:11.020Z"),
            ("00000000000000644", 1, "CENTRALC0001", "CC-0324-77", "356.18", "356.18", "2024-03-14", "2024-04-13",
             "Open", "AP-0314", True, "Approved", "", "2024-03-14T15:40:11.480Z"),
            ("00000000000000650", 1, "NORDICSU0001", "NS-24-0192", "9120.00", "9120.00", "2024-03-14", "2024-05-13",
             "Open", "AP-0314", False, "Approved", "", "2024-03-14T15:40:12.010Z"),
            ("00000000000000598", 1, "ASSOCIAT0001", "POL-2024-Q1", "4200.00", "0.00", "2024-01-05", "2024-02-04",
             "History", "AP-0105", False, "Approved", "", "2024-02-01T14:05:00.000Z"),
            ("00000000000000602", 6, "ASSOCIAT0001", "00000000000000312", "4200.00", "0.00", "2024-02-01", None,
             "History", "PM_Payment", False, "No Approval Needed", "", "2024-02-01T14:04:59.000Z"),
        ]
        for voucher, dt, vid, docno, amount, balance, ddate, due, state, batch, hold, wf, po, modified in invoices:
            currency = v[vid]["CurrencyKey"]["Id"]
            row = _payables_row(
                voucher, dt, v[vid], docno, Decimal(amount), date.fromisoformat(ddate),
                date.fromisoformat(due) if due else None, state=state, batch=batch, on_hold=hold, workflow=wf,
                po_number=po, posted_date=None if state == "Work" else _day(date.fromisoformat(ddate) + timedelta(1)),
                modified=modified, currency=currency,
            )
            row["CurrentTrxAmount"]["Value"] = Decimal(balance)
            co.tables["payables"].put(row)
        pos = [
            ("PO2107", "ADVANCED0001", 2, 6, "2024-03-01", "2024-03-12", "JMORRIS",
             [("100XLG", "Green Phone", 10, "119.00", "WAREHOUSE")], "0.00", "2024-03-14T09:00:00.000Z"),
            ("PO2109", "ACETRAVE0001", 1, 4, "2024-03-15", "2024-04-01", "ALEEDS",
             [("TRAVEL-SVC", "Conference travel package", 1, "2500.00", "MAIN")], None, "2024-03-15T12:30:00.000Z"),
            ("PO2088", "ADVANCED0001", 5, 6, "2024-01-20", "2024-01-31", "JMORRIS",
             [("ACCS-CRD-12WH", "Phone cord - 12' white", 20, "8.76", "WAREHOUSE"),
              ("ACCS-HDS-1EAR", "Single-ear headset", 4, "33.80", "WAREHOUSE")], "0.00", "2024-02-10T08:15:00.000Z"),
        ]
        for number, vid, status, approval, odate, rdate, buyer, lines, remaining, modified in pos:
            d = date.fromisoformat(odate)
            row = _po_row(
                number, v[vid], status, approval, d, date.fromisoformat(rdate), buyer,
                [(i, desc, Decimal(q), Decimal(c), site) for i, desc, q, c, site in lines],
                created=_day(d), modified=modified,
            )
            if remaining is not None:
                row["RemainingSubtotal"]["Value"] = Decimal(remaining)
            if status in (5, 6):
                row["TransactionState"] = "History"
            co.tables["purchase_orders"].put(row)
        co.tables["receipts"].put(_receipt_row(
            "RCT1187", v["ADVANCED0001"], "INV-88213", date(2024, 3, 13), "History",
            [("PO2107", "100XLG", "Green Phone", Decimal(10), Decimal("119.00"), "WAREHOUSE")],
            voucher="00000000000000641", type_name="Shipment/Invoice",
        ))
        co.tables["receipts"].put(_receipt_row(
            "RCT1102", v["ADVANCED0001"], "PS-55120", date(2024, 1, 29), "History",
            [("PO2088", "ACCS-CRD-12WH", "Phone cord - 12' white", Decimal(20), Decimal("8.76"), "WAREHOUSE"),
             ("PO2088", "ACCS-HDS-1EAR", "Single-ear headset", Decimal(4), Decimal("33.80"), "WAREHOUSE")],
            voucher="",
        ))
        gl = [
            (3418, date(2024, 3, 31), "GJ", "Accrue March rent", "Work",
             [("000-6400-00", "5000.00", "0"), ("000-2300-00", "0", "5000.00")], "2024-03-29T16:20:00.000Z", None),
            (3390, date(2024, 3, 14), "PMTRX", "Payables Transaction Entry", "Open",
             [("000-6170-00", "1190.00", "0"), ("000-6630-00", "97.50", "0"), ("000-2100-00", "0", "1287.50")],
             "2024-03-14T15:40:12.300Z", date(2024, 3, 14)),
            (2911, date(2023, 12, 31), "GJ", "Year-end accrual", "History",
             [("000-1100-00", "800.00", "0"), ("000-4110-01", "0", "800.00")], "2024-01-02T17:30:00.000Z",
             date(2024, 1, 2)),
        ]
        for jid, d, src, ref, state, lines, modified, posted in gl:
            row = _gl_row(
                jid, d, src, ref, state, [(a, Decimal(dr), Decimal(cr), ref) for a, dr, cr in lines],
                modified=modified, posted_date=posted,
            )
            if jid == 3390:
                row["OriginatingDocument"] = {"MasterId": "ADVANCED0001", "DocumentNumber": "INV-88213"}
            co.tables["gl"].put(row)


# --- row builders (the JSON bodies; field names follow the WSDL summaries) -----------


def _strip(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row without internal ``_`` fields; shares nested values, so serialise under the lock."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a stored row: internal ``_`` fields dropped, nested values copied."""
    return json.loads(_dumps({k: v for k, v in row.items() if not k.startswith("_")}), parse_float=Decimal)


def _vendor_row(
    vid: str, name: str, cls: str, city: str, state: str, country: str, phone: str, terms: str, currency: str,
    hold: bool, active: bool, approval: str, *, created: str, modified: str,
) -> dict[str, Any]:
    return {
        "Key": {"Id": vid}, "Name": name, "ClassKey": {"Id": cls}, "IsActive": bool(active), "IsOnHold": bool(hold),
        "IsOneTime": False, "City": city, "State": state, "CountryRegion": country,
        "PhoneNumbers": [{"Value": phone}] if phone else [], "PaymentTermsKey": {"Id": terms},
        "CurrencyKey": {"Id": currency}, "CreatedDate": created, "ModifiedDate": modified,
        "WorkflowApprovalStatus": approval,
    }


def _vendor_stub(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"Key": {"Id": row["VendorKey"]["Id"]}, "Name": row.get("VendorName", ""), "CurrencyKey": {"Id": CURRENCY}}


def _payables_row(
    voucher: str, doc_type: int, vendor: Mapping[str, Any], docno: str, amount: Decimal, doc_date: date,
    due: date | None, *, state: str, batch: str, on_hold: bool, workflow: str, po_number: str,
    posted_date: str | None, modified: str, currency: str | None = None,
) -> dict[str, Any]:
    cur = currency or vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    source = "PM_Payment" if doc_type == 6 else "PM_Trxent"
    return {
        "_type_code": doc_type,
        "Key": {"Id": voucher}, "Type": _DOC_TYPES[doc_type], "TransactionState": state,
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "VendorDocumentNumber": docno, "BatchKey": {"Id": batch, "Source": source},
        "Date": _day(doc_date), "GeneralLedgerPostingDate": _day(doc_date),
        "DueDate": _day(due) if due else None,
        "DocumentAmount": _money(amount, cur), "CurrentTrxAmount": _money(amount, cur),
        "PONumber": po_number, "IsVoided": False, "OnHold": bool(on_hold),
        "PostedDate": posted_date, "PostedBy": "sa" if posted_date else "", "ModifiedBy": "sa",
        "ModifiedDate": modified, "WorkflowStatus": workflow,
    }


def _line_tuple(x: Any) -> tuple[str, str, Decimal, Decimal, str]:
    if isinstance(x, Mapping):
        return (str(x["item"]), str(x.get("description", "")), Decimal(str(x["quantity"])),
                Decimal(str(x["unit_cost"])), str(x.get("site", "WAREHOUSE")))
    item, desc, qty, cost, *rest = x
    return str(item), str(desc), Decimal(str(qty)), Decimal(str(cost)), str(rest[0] if rest else "WAREHOUSE")


def _po_row(
    number: str, vendor: Mapping[str, Any], status: int, approval: int, order_date: date, required: date,
    buyer: str, lines: Sequence[tuple[str, str, Decimal, Decimal, str]], *, created: str, modified: str,
) -> dict[str, Any]:
    cur = vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    body_lines = []
    for i, (item, desc, qty, cost, site) in enumerate(lines, start=1):
        body_lines.append({
            "LineSequenceNumber": 16384 * i, "ItemKey": {"Id": item}, "ItemDescription": desc,
            "QuantityOrdered": qty, "UnitCost": _money(cost, cur), "ExtendedCost": _money(qty * cost, cur),
            "SiteKey": {"Id": site}, "RequiredDate": _day(required),
        })
    subtotal = sum((qty * cost for _, _, qty, cost, _ in lines), Decimal(0))
    return {
        "Key": {"Id": number}, "Type": "Standard", "Status": status, "TransactionState": "Work",
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "Date": _day(order_date), "RequestedDate": _day(required), "BuyerKey": {"Id": buyer},
        "Subtotal": _money(subtotal, cur), "RemainingSubtotal": _money(subtotal, cur), "IsOnHold": False,
        "RevisionNumber": 0, "WorkflowApprovalStatus": approval, "Lines": body_lines,
        "CreatedDate": created, "ModifiedDate": modified,
    }


def _receipt_row(
    number: str, vendor: Mapping[str, Any], vendor_doc: str, receipt_date: date, state: str,
    lines: Sequence[tuple[str, str, str, Decimal, Decimal, str]], *, voucher: str, type_name: str = "Shipment",
) -> dict[str, Any]:
    cur = vendor.get("CurrencyKey", {}).get("Id", CURRENCY)
    body_lines = [
        {
            "LineNumber": 16384 * i, "PONumber": po, "ItemKey": {"Id": item}, "ItemDescription": desc,
            "QuantityShipped": qty, "UnitCost": _money(cost, cur), "ExtendedCost": _money(qty * cost, cur),
            "SiteKey": {"Id": site},
        }
        for i, (po, item, desc, qty, cost, site) in enumerate(lines, start=1)
    ]
    return {
        "Key": {"Id": number}, "Type": type_name, "TransactionState": state,
        "VendorKey": {"Id": vendor["Key"]["Id"]}, "VendorName": vendor.get("Name", ""),
        "VendorDocumentNumber": vendor_doc, "ReceiptDate": _day(receipt_date),
        "GeneralLedgerPostingDate": _day(receipt_date), "VoucherNumber": voucher,
        "Subtotal": _money(sum((ln[3] * ln[4] for ln in lines), Decimal(0)), cur),
        "Lines": body_lines, "CreatedDate": _day(receipt_date),
        # POP receipt tables have no DEX_ROW_TS, so the only change date is the day-granular
        # MODIFDT, without an offset: a poller must look back a whole day.
        "ModifiedDate": _day(receipt_date),
    }


def _gl_line(x: Any) -> tuple[str, Decimal, Decimal, str]:
    if isinstance(x, Mapping):
        acct, dr, cr, desc = x["account"], x.get("debit", 0), x.get("credit", 0), x.get("description", "")
    else:
        acct, dr, cr, *rest = x
        desc = rest[0] if rest else ""
    dr_d, cr_d = Decimal(str(dr or 0)), Decimal(str(cr or 0))
    if dr_d < 0 or cr_d < 0 or (dr_d and cr_d) or not (dr_d or cr_d):
        raise ValueError(f"line {acct}: exactly one of debit or credit must be a positive amount")
    if not str(acct).strip():
        raise ValueError("every line needs an account")
    return str(acct), dr_d, cr_d, str(desc)


def _gl_row(
    jid: int, trx_date: date, source: str, reference: str, state: str,
    lines: Sequence[tuple[str, Decimal, Decimal, str]], *, modified: str, posted_date: date | None,
) -> dict[str, Any]:
    return {
        "Key": {"JournalId": jid, "Year": trx_date.year}, "TransactionState": state, "LedgerType": "Base",
        "SourceDocumentKey": {"Id": source}, "Reference": reference, "TransactionDate": _day(trx_date),
        "FiscalPeriod": f"{trx_date:%Y-%m}", "OriginatingPostedDate": _day(posted_date) if posted_date else None,
        "BatchKey": {"Id": "", "Source": "GL_Normal"}, "IsVoided": False, "BackOutJournalId": None,
        "OriginalJournalId": None, "CurrencyKey": {"Id": CURRENCY},
        "Lines": [
            {
                "SequenceNumber": 16384 * i, "GLAccountKey": {"Id": acct}, "Description": desc or reference,
                "DebitAmount": _money(dr), "CreditAmount": _money(cr),
            }
            for i, (acct, dr, cr, desc) in enumerate(lines, start=1)
        ],
        "ModifiedDate": modified,
    }


_BULK_VENDORS = ("ACETRAVE0001", "ADVANCED0001", "CENTRALC0001", "SMITHSON0001")


def _bulk_row(kind: str, co: _Company, n: int, modified: datetime) -> dict[str, Any]:
    """Synthetic row number ``n`` of ``kind``, the same every time it is asked for."""
    stamp = _ts(modified)
    vid = _BULK_VENDORS[n % len(_BULK_VENDORS)]
    vendor = co.tables["vendors"].get((vid,)) or {"Key": {"Id": vid}, "Name": f"Vendor {vid}"}
    amount = Decimal(1000 + (n * 7919) % 2_500_000) / 100
    day = modified.date()
    if kind == "vendors":
        return _vendor_row(
            f"BULK{n:08d}", f"Bulk Vendor {n}", "USA-US-I", "Chicago", "IL", "USA", "", "Net 30", CURRENCY,
            False, True, "Approved", created=_day(day), modified=stamp,
        )
    if kind == "payables":
        return _payables_row(
            f"9{n:016d}", 1, vendor, f"BLK-{n:08d}", amount, day, day + timedelta(30), state="Open",
            batch="AP-BULK", on_hold=False, workflow="Approved", po_number="", posted_date=_day(day), modified=stamp,
        )
    if kind == "purchase_orders":
        return _po_row(
            f"PB{n:08d}", vendor, 1 + n % 4, 6, day, day + timedelta(14), "BULK",
            [("100XLG", "Green Phone", Decimal(1 + n % 20), Decimal("119.00"), "WAREHOUSE")],
            created=_day(day), modified=stamp,
        )
    if kind == "receipts":
        return _receipt_row(
            f"RB{n:08d}", vendor, f"PS-B{n:08d}", day, "History",
            [(f"PB{n:08d}", "100XLG", "Green Phone", Decimal(1 + n % 20), Decimal("119.00"), "WAREHOUSE")],
            voucher="",
        )
    return _gl_row(
        1_000_000 + n, day, "GJ", f"Bulk entry {n}", "Open",
        [("000-6170-00", amount, Decimal(0), ""), ("000-2100-00", Decimal(0), amount, "")],
        modified=stamp, posted_date=day,
    )


# --- route parsing -------------------------------------------------------------------------------


def _paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the key that starts at ``start``; raises ValueError."""
    end = text.find(")", start)
    if end < 0:
        raise ValueError("unbalanced parentheses in the URL")
    return end


def _parse_route(raw_path: str) -> _Route:
    """Split ``/GPService/Tenants(T)/Companies(C)/<resource>[(<key>)]`` (raw, percent-encoded)."""
    prefix = "/GPService/Tenants("
    if not raw_path.startswith(prefix):
        raise ValueError("expected /GPService/Tenants(<tenant>)/...")
    end = _paren(raw_path, len(prefix))
    tenant = unquote(raw_path[len(prefix):end])
    rest = raw_path[end + 1:].strip("/")
    if rest in ("help", ""):
        return _Route(tenant, "help")
    if rest == "Companies":
        return _Route(tenant, "Companies")
    if not rest.startswith("Companies("):
        raise ValueError("expected Companies(<company>)")
    body = rest[len("Companies("):]
    # The company key may hold raw parentheses: take the first ")" that is followed by
    # the end of the path or by a known series segment.
    close = -1
    for i, ch in enumerate(body):
        if ch != ")":
            continue
        after = body[i + 1:]
        if after in ("", "/") or any(after.startswith("/" + s) for s in _SERIES):
            close = i
            break
    if close < 0:
        raise ValueError("unbalanced parentheses in the company key")
    company = unquote(body[:close])
    tail = body[close + 1:].strip("/")
    if not tail:
        return _Route(tenant, "", company=company, unknown="")
    key: tuple[str, ...] | None = None
    path = tail
    if tail.endswith(")") and "(" in tail:
        open_at = tail.index("(")
        path, key_text = tail[:open_at], tail[open_at + 1:-1]
        key = tuple(unquote(part) for part in key_text.split(";"))
    for res in RESOURCES:
        if unquote(path) == res.path:
            return _Route(tenant, "", company=company, resource=res, key=key)
    return _Route(tenant, "", company=company, unknown=unquote(tail))


# --- validation helpers --------------------------------------------------------------------------


def _one_of(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {list(allowed)}, not {value!r}")
    return str(value)


def _page_size(value: Any) -> int | None:
    if value is None:
        return None
    n = int(value)
    if n < 1:
        raise ValueError("page_size must be at least 1 (or None)")
    return n


def _advertise(value: Any) -> tuple[str, ...]:
    schemes = (value,) if isinstance(value, str) else tuple(value)
    if not schemes or any(s not in ("Negotiate", "NTLM") for s in schemes):
        raise ValueError("advertise must list 'Negotiate' and/or 'NTLM'")
    return schemes


def _check_secret(password: str) -> None:
    # The Heimdal user-file format is colon-separated, one account per line.
    if not password or any(c in password for c in ":\r\n"):
        raise ValueError("password must be non-empty without ':' or line breaks")


def _aware(value: Any) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _control_error(status: int, message: str) -> Response:
    """A control-API error: ``{"ok": false, "error": message}``."""
    return Response(status, _dumps({"ok": False, "error": message}), {"Content-Type": "application/json"})


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulator in the foreground: ``python -m simulators.gp --port 0 [--tls]``."""
    parser = argparse.ArgumentParser(prog="python -m simulators.gp", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a freshly made trustme CA")
    parser.add_argument("--page-size", type=int, default=None, help="rows per list page (default: unpaged)")
    parser.add_argument("--envelope", choices=("payload", "bare"), default="payload")
    parser.add_argument("--list-shape", choices=("array", "object"), default="array")
    parser.add_argument("--no-gl", action="store_true", help="answer 404 for the GL resource")
    args = parser.parse_args(argv)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C, so the temporary files are removed

    signal.signal(signal.SIGTERM, _stop)
    sim = GpSimulator(
        page_size=args.page_size, envelope=args.envelope, list_shape=args.list_shape, expose_gl=not args.no_gl
    )
    with sim, sim.serve(tls=args.tls, port=args.port) as served:
        print(f"GP SBA simulator: {sim.service_url}", flush=True)
        print(f"  tenant:   {sim.tenant}", flush=True)
        print(f"  company:  {sim.company} (URL: Companies({quote(sim.company, safe='')}))", flush=True)
        print(f"  user:     {sim.username}", flush=True)
        print(f"  password: {sim.password}", flush=True)
        if sim.ca_path:
            print(f"  CA:       {sim.ca_path}  (pass as verify=)", flush=True)
        print(f"  control:  {served.url}/__sim/<method>  (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            served.thread.join()


if __name__ == "__main__":
    main()
