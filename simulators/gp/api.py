"""The SBA REST API: URL routing, envelopes and list shapes (both switchable, as the real ones are unknown), paging by next links, and GP's JSON error bodies.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import unquote

from simulators._http import Request, Response
from simulators.gp.auth import _User
from simulators.gp.data import (
    _DOC_TYPE_CODES,
    _SERIES,
    MAX_UNPAGED_ROWS,
    RESOURCES,
    _bulk_row,
    _Company,
    _dumps,
    _Resource,
    _status_code,
    _strip,
)
from simulators.gp.soap import SOAP_PATH

_LOG_SIZE = 2000


def _token_encode(position: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def _token_decode(token: str) -> list[Any]:
    padded = token + "=" * (-len(token) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    if not isinstance(value, list) or not value or value[0] not in ("e", "b"):
        raise ValueError("bad skiptoken")
    return value


@dataclass(frozen=True)
class _Route:
    tenant: str
    tail: str  # "help", "Companies", or "" when a company follows
    company: str | None = None
    resource: _Resource | None = None
    key: tuple[str, ...] | None = None
    unknown: str | None = None  # a path under the company that names no resource


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


class RestApi:
    """The REST resources of ``GpSimulator``."""

    def _api(self, req: Request, user_box: list[str | None]) -> Response:
        soap = req.path.rstrip("/").lower() == SOAP_PATH.lower()
        if not (soap or req.path.startswith("/GPService/")):
            return Response(404, b"", {"Content-Type": "text/plain"})
        auth = self._authenticate(req)
        if isinstance(auth, Response):
            return auth
        user, auth_headers = auth
        user_box[0] = user.principal
        resp = self._soap(req, user) if soap else self._authorised(req, user)  # type: ignore[attr-defined]
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
        """Key shapes GP may use that its REST service does not document (``key_shapes``), and
        the currency setup's ISO code under the configured name (or none)."""
        if table == "currencies":
            iso = row.pop("ISOCode", None)
            if self.currency_iso_field:
                row[self.currency_iso_field] = iso
            return row
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
