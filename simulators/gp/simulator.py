"""``GpSimulator``: the state, the clock, faults and counters, serving, and dispatch.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import ssl
import tempfile
import threading
import weakref
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import unquote

from simulators._faults import COMMON_KINDS, Fault, FaultQueue
from simulators._http import Request, Response, Served, serve_on_loopback
from simulators.gp.api import _LOG_SIZE, RestApi
from simulators.gp.auth import DEFAULT_PASSWORD, DEFAULT_USER, Authentication, _User
from simulators.gp.control import Control
from simulators.gp.data import DEFAULT_COMPANY, DEFAULT_TENANT, _Company, _ts
from simulators.gp.soap import OPERATIONS, SoapApi

FAULTS = (*COMMON_KINDS, "auth_401", "soap_system", "soap_validation", "soap_denied")


class GpSimulator(Authentication, RestApi, SoapApi, Control):

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
        expose_currencies: bool = True,
        currency_iso_field: str | None = "ISOCode",
        advertise: Sequence[str] = ("Negotiate", "NTLM"),
        require_cbt: bool = False,
        reauth_per_request: bool = False,
        error_style: str = "json",
        clock: Callable[[], datetime] | None = None,
        key_shapes: Sequence[str] = (),
        soap_criteria: str = "honoured",
        soap_dates: str = "utc",
        soap_operations: Sequence[str] = OPERATIONS,
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
        self.expose_currencies = True
        self.currency_iso_field: str | None = "ISOCode"
        self.advertise: tuple[str, ...] = ("Negotiate", "NTLM")
        self.require_cbt = False
        self.reauth_per_request = False
        self.error_style = "json"
        self.soap_criteria = "honoured"
        self.soap_dates = "utc"
        self.soap_operations: tuple[str, ...] = OPERATIONS
        self._validation_log: dict[str, list[str]] = {}
        self.configure(
            envelope=envelope, list_shape=list_shape, page_size=page_size, expose_gl=expose_gl,
            expose_receipts=expose_receipts, expose_currencies=expose_currencies,
            currency_iso_field=currency_iso_field, advertise=advertise, require_cbt=require_cbt,
            reauth_per_request=reauth_per_request, error_style=error_style, soap_criteria=soap_criteria,
            soap_dates=soap_dates, soap_operations=soap_operations,
        )
        self.add_user(DEFAULT_USER, DEFAULT_PASSWORD, gp_user="SVCPOLL", companies=companies)
        if seed:
            self._seed_fabrikam(self._companies[companies[0]])

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
    _CONTROL = frozenset({
        "configure", "settings", "add_user", "set_password", "set_company_access", "inject", "clear_faults",
        "counters", "reset_counters", "requests", "add_vendor", "update_vendor", "add_invoice", "add_drafts",
        "post_batch", "pay_invoice", "update_invoice", "add_po", "set_po_status", "set_po_approval",
        "receive_po", "post_gl_entry", "void_gl_entry", "back_out_gl_entry", "generate",
    })
