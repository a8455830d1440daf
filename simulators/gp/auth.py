"""Windows authentication as GP's service does it: real NTLM/Negotiate with pyspnego as the acceptor, connection-based (HTTP.sys), optional channel binding over TLS; Windows principal -> GP user -> company access.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence
from urllib.parse import unquote

from simulators._http import Request, Response

DEFAULT_USER = "CONTOSO\\svc-gp-poll"  # the service account of the example

DEFAULT_PASSWORD = "Passw0rd!"


@dataclass
class _User:
    principal: str  # DOMAIN\user, the Windows account
    password: str
    gp_user: str | None  # the mapped GP user (User Setup → Windows Account); None = not mapped
    companies: set[str]
    epoch: int = 0  # bumped on password change: authenticated connections must log on again


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


def _check_secret(password: str) -> None:
    # The Heimdal user-file format is colon-separated, one account per line.
    if not password or any(c in password for c in ":\r\n"):
        raise ValueError("password must be non-empty without ':' or line breaks")


class Authentication:
    """Users and the NTLM/Negotiate handshake of ``GpSimulator``."""

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
