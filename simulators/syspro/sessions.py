"""Operators, companies and e.net sessions: one session per operator, an idle timeout on the simulator's clock, evictions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from simulators.syspro.tables import _QueryError

# What e.net answers for a session that expired, was evicted, or never was.
INVALID_SESSION = (
    "ERROR: The supplied UserID is invalid. Either you were not logged in; or your session has "
    "expired. You will need to logon again."
)


@dataclass
class _Session:
    user_id: str
    operator: str
    company: str
    created: float
    last_active: float
    origin: str = "e.net"
    token: str = ""  # as handed out, trailing spaces included


class Sessions:
    """Sessions and credentials of ``SysproSimulator``."""

    def sessions(self) -> list[dict[str, Any]]:
        """Open sessions (lets tests assert that a client always logs off)."""
        with self._lock:
            now = self.now()
            return [
                {"user_id": s.user_id, "operator": s.operator, "company": s.company,
                 "origin": s.origin, "idle_seconds": round(now - s.last_active, 3)}
                for s in self._sessions.values()
            ]

    def expire_sessions(self, user_id: str | None = None) -> int:
        """Forget one session (by UserId) or all of them: the next call gets "UserID is invalid"."""
        with self._lock:
            if user_id is None:
                n = len(self._sessions)
                self._sessions.clear()
                return n
            return 1 if self._sessions.pop(user_id.rstrip(), None) else 0

    def evict(self, operator: str) -> str:
        """A person logs on at the desktop as ``operator``: the integration's session dies."""
        with self._lock:
            op = operator.upper()
            s = self._open_session(op, (self.operators.get(op, {}).get("companies") or ["EDU1"])[0],
                                   origin="desktop")
            return s.user_id

    def set_password(self, operator: str, password: str | None = None, *,
                     odata_password: str | None = None) -> None:
        """Change an operator's e.net and/or OData password."""
        with self._lock:
            op = self.operators.setdefault(operator.upper(), {"companies": list(self.companies),
                                                              "max_sessions": 1})
            if password is not None:
                op["password"] = password
            if odata_password is not None:
                op["odata_password"] = odata_password

    def set_company_password(self, company: str, password: str) -> None:
        """Change a company's password."""
        with self._lock:
            self.companies.setdefault(company.upper(), {})["password"] = password

    def _new_token(self) -> str:
        if self.token_style == "long":
            return "SYS" + secrets.token_hex(32).upper()
        # 32 upper-case hex digits, then "00", then two spaces.
        return secrets.token_hex(16).upper() + "00  "

    def _open_session(self, operator: str, company: str, *, origin: str = "e.net") -> _Session:
        now = self.now()
        max_sessions = int(self.operators.get(operator, {}).get("max_sessions", 1))
        mine = sorted((s for s in self._sessions.values() if s.operator == operator),
                      key=lambda s: s.created)
        # one session per operator; the new logon kills the oldest.
        while len(mine) >= max_sessions:
            self._sessions.pop(mine.pop(0).user_id, None)
        if len(self._sessions) >= self.licence_seats_total:
            idle = [s for s in self._sessions.values() if now - s.last_active > self.idle_timeout_seconds]
            if not idle:
                raise _QueryError("ERROR: The maximum number of e.net licensed users has been exceeded")
            self._sessions.pop(max(idle, key=lambda s: now - s.last_active).user_id)
        token = self._new_token()
        s = _Session(token.rstrip(), operator, company, now, now, origin, token)
        self._sessions[s.user_id] = s
        return s

    def _session(self, user_id: str | None) -> _Session:
        if user_id is None:
            raise _QueryError(INVALID_SESSION)
        uid = user_id.rstrip() if self.accept_untrimmed_token else user_id
        s = self._sessions.get(uid)
        if s is None or (not self.accept_untrimmed_token and user_id != s.token):
            raise _QueryError(INVALID_SESSION)
        now = self.now()
        if now - s.last_active > self.idle_timeout_seconds:
            del self._sessions[uid]
            raise _QueryError(INVALID_SESSION)
        s.last_active = now  # every business-object call refreshes the idle clock
        return s
