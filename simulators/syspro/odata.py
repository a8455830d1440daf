"""SYSPRO OData v4: Basic auth, ``$filter/$select/$orderby/$top/$skip/$count``, the 5,000-row cap and nextLinks.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from simulators._http import Request, Response, json_response
from simulators.syspro.tables import _EDM, _OPS, _UTC, _compile, _prepend, _QueryError, _render_json, _Table

ODATA_PREFIX = "/SYSPRO8Odata/SYSPROOData"


def _parse_bool(tokens: list[Any]) -> tuple[tuple, list[Any]]:
    """or-expression over tokens: leaves, "and", "or", "(", ")"; AND binds tighter than OR."""

    def parse_or(ts: list[Any]) -> tuple[tuple, list[Any]]:
        left, ts = parse_and(ts)
        while ts and ts[0] == "or":
            right, ts = parse_and(ts[1:])
            left = ("or", left, right)
        return left, ts

    def parse_and(ts: list[Any]) -> tuple[tuple, list[Any]]:
        left, ts = parse_atom(ts)
        while ts and ts[0] == "and":
            right, ts = parse_atom(ts[1:])
            left = ("and", left, right)
        return left, ts

    def parse_atom(ts: list[Any]) -> tuple[tuple, list[Any]]:
        if ts[0] == "(":
            inner, ts = parse_or(ts[1:])
            if not ts or ts[0] != ")":
                raise ValueError("unbalanced")
            return inner, ts[1:]
        if isinstance(ts[0], tuple):
            return ts[0], ts[1:]
        raise ValueError(f"unexpected {ts[0]!r}")

    return parse_or(tokens)


_ODATA_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<str>'(?:[^']|'')*')"
    r"|(?P<bin>binary'[A-Za-z0-9+/=_-]*')"
    r"|(?P<dto>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<num>-?\d+(?:\.\d+)?(?:[mMdD])?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),])"
    r")"
)

_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
             "lt": "LessThan", "le": "LessThanOrEqual"}


def _parse_odata_filter(text: str, t: _Table, rowversion_ordering: bool) -> tuple:
    """``$filter`` -> filter tree. Supports comparisons, and/or/not and brackets."""
    if not text.strip():
        return ("true",)
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _ODATA_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise _QueryError(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()

    def literal(tok: tuple[str, str, int]) -> tuple[str, Any]:
        kind, raw, _ = tok
        if kind == "str":
            return "Edm.String", raw[1:-1].replace("''", "'")
        if kind == "bin":
            try:
                return "Edm.Binary", int.from_bytes(base64.b64decode(raw[7:-1]), "big")
            except binascii.Error:
                raise _QueryError(f"Unrecognized 'Edm.Binary' literal '{raw}'.") from None
        if kind == "dto":
            return "Edm.DateTimeOffset", datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(_UTC)
        if kind == "date":
            return "Edm.Date", date.fromisoformat(raw)
        if kind == "num":
            return "Edm.Decimal", Decimal(raw.rstrip("mMdD"))
        if kind == "name" and raw == "null":
            return "null", None
        raise _QueryError(f"Syntax error at position {tok[2]} in '{text}'.")

    def comparison(ts: list[tuple[str, str, int]]) -> tuple[tuple, list]:
        if len(ts) < 3 or ts[1][0] != "name" or ts[1][1] not in _OPS:
            at = ts[1][2] if len(ts) > 1 else len(text)
            raise _QueryError(f"Syntax error at position {at} in '{text}'.")
        left, op, right = ts[0], ts[1][1], ts[2]
        if left[0] == "name" and left[1] in t.pos:
            col_tok, lit_tok = left, right
        elif right[0] == "name" and right[1] in t.pos:
            col_tok, lit_tok = right, left
            op = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}.get(op, op)
        else:
            name = left[1] if left[0] == "name" else right[1]
            raise _QueryError(f"Could not find a property named '{name}' on type 'SYSPRO.{t.name}'.")
        col = t.cols[t.pos[col_tok[1]]]
        edm, value = literal(lit_tok)
        ok = {"str": ("Edm.String",), "dec": ("Edm.Decimal",), "ts": ("Edm.Binary",),
              "date": ("Edm.DateTimeOffset", "Edm.Date")}[col.kind]
        if edm != "null" and edm not in ok:
            raise _QueryError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[col.kind]}' and '{edm}' for operator kind '{_OP_NAMES[op]}'.")
        if col.kind == "ts" and op not in ("eq", "ne") and not rowversion_ordering:
            raise _QueryError(f"The binary operator {_OP_NAMES[op]} is not defined for the types "
                              "'System.Byte[]' and 'System.Byte[]'.")
        return ("cmp", col.name, op, value), ts[3:]

    def parse_or(ts: list) -> tuple[tuple, list]:
        left, ts = parse_and(ts)
        while ts and ts[0][:2] == ("name", "or"):
            right, ts = parse_and(ts[1:])
            left = ("or", left, right)
        return left, ts

    def parse_and(ts: list) -> tuple[tuple, list]:
        left, ts = parse_not(ts)
        while ts and ts[0][:2] == ("name", "and"):
            right, ts = parse_not(ts[1:])
            left = ("and", left, right)
        return left, ts

    def parse_not(ts: list) -> tuple[tuple, list]:
        if not ts:
            raise _QueryError(f"Syntax error: unexpected end of '{text}'.")
        if ts[0][:2] == ("name", "not"):
            inner, ts = parse_not(ts[1:])
            return ("not", inner), ts
        if ts[0][:2] == ("punct", "("):
            inner, ts = parse_or(ts[1:])
            if not ts or ts[0][:2] != ("punct", ")"):
                raise _QueryError(f"Syntax error: ')' expected in '{text}'.")
            return inner, ts[1:]
        return comparison(ts)

    tree, rest = parse_or(tokens)
    if rest:
        raise _QueryError(f"Syntax error at position {rest[0][2]} in '{text}'.")
    return tree


def _odata_error(status: int, message: str) -> Response:
    return json_response({"error": {"code": "", "message": message}}, status, {"OData-Version": "4.0"})


def _odata_json(payload: Any) -> Response:
    return json_response(payload, 200, {"OData-Version": "4.0",
                                        "Content-Type": "application/json; odata.metadata=minimal"})


class ODataApi:
    """The OData endpoints of ``SysproSimulator``."""

    def _odata(self, request: Request, rest: str) -> Response:
        parts = [p for p in rest.split("/") if p]
        if request.method not in ("GET", "HEAD"):
            return _odata_error(405, "The requested resource does not support http method "
                                     f"'{request.method}'.")
        if not parts:
            return _odata_error(404, "No company in the path.")
        company = parts[0].upper()
        denied = self._odata_auth(request, company)
        if denied is not None:
            return denied
        with self.company_data(company):  # the company in the path is the database read
            return self._odata_company(request, parts)

    def _odata_company(self, request: Request, parts: list[str]) -> Response:
        base = f"{self._origin(request)}{ODATA_PREFIX}/{parts[0]}"
        if len(parts) == 1:
            sets = [{"name": n, "kind": "EntitySet", "url": n} for n in self.tables]
            return _odata_json({"@odata.context": f"{base}/$metadata", "value": sets})
        if parts[1] == "$metadata":
            return Response(200, self._metadata().encode(), {"Content-Type": "application/xml",
                                                              "OData-Version": "4.0"})
        t = self.tables.get(parts[1])  # entity sets are case-sensitive in ASP.NET OData
        if t is None or len(parts) > 2:
            return _odata_error(404, f"The path template '{'/'.join(parts[1:])}' on the action "
                                     f"'Get' in controller 'SYSPROOData' is not a valid OData path template.")
        try:
            return self._odata_query(request, t, base)
        except _QueryError as exc:
            return _odata_error(400, str(exc))

    def _odata_auth(self, request: Request, company: str) -> Response | None:
        header = request.headers.get("authorization", "")
        ok = False
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            op = self.operators.get(user.upper())
            # only operators configured for OData (an OData password) get in.
            ok = bool(op and op.get("odata_password") and password == op["odata_password"]
                      and company in {c.upper() for c in op.get("companies", self.companies)})
        if ok:
            if company not in self.companies:
                return _odata_error(404, f"Company '{company}' is not configured.")
            return None
        resp = _odata_error(401, "Authorization has been denied for this request.")
        resp.headers["WWW-Authenticate"] = 'Basic realm="SYSPRO OData"'
        return resp

    def _origin(self, request: Request) -> str:
        return f"{self.public_scheme}://{request.headers.get('host', 'localhost')}"

    def _odata_query(self, request: Request, t: _Table, base: str) -> Response:
        q = request.query
        select = [s.strip() for s in (q.get("$select") or "").split(",") if s.strip()]
        for s in select:
            if s not in t.pos:
                raise _QueryError(f"Could not find a property named '{s}' on type 'SYSPRO.{t.name}'.")
        cols = [t.cols[t.pos[s]] for s in select] if select else list(t.cols)
        where = _parse_odata_filter(q.get("$filter") or "", t, self.odata_rowversion_filter)
        order: list[tuple[str, bool]] = []
        for item in (q.get("$orderby") or "").split(","):
            bits = item.split()
            if not bits:
                continue
            if bits[0] not in t.pos or len(bits) > 2 or (len(bits) == 2 and bits[1] not in ("asc", "desc")):
                raise _QueryError(f"Could not find a property named '{bits[0]}' on type 'SYSPRO.{t.name}'.")
            order.append((bits[0], len(bits) == 2 and bits[1] == "desc"))
        try:
            top = int(q["$top"]) if "$top" in q else None
            skip = int(q.get("$skip") or 0)
        except ValueError:
            raise _QueryError("Invalid value for $top or $skip.") from None
        if (top is not None and top < 0) or skip < 0:
            raise _QueryError("Invalid value for $top or $skip.")
        page = self.odata_max_rows if top is None else min(top, self.odata_max_rows)
        key = (id(self.tables), t.name, q.get("$filter") or "", tuple(order), self._version)
        cached = self._streams.pop(key, None)
        if cached is not None and cached[0] == skip:
            rows = cached[1]  # continue where the previous page stopped ($skip paging is O(page))
        else:
            rows = self._stream(t, where, _compile(where, t), order)
            for _ in range(skip):
                if next(rows, None) is None:
                    break
        taken = [r for _, r in zip(range(page), rows)]
        more = next(rows, None)
        if more is not None:
            self._streams[key] = (skip + len(taken), _prepend(more, rows))
            while len(self._streams) > 16:
                self._streams.popitem(last=False)
        context = f"{base}/$metadata#{t.name}" + (f"({','.join(select)})" if select else "")
        pieces = [f'{{"@odata.context":{json.dumps(context)}']
        if (q.get("$count") or "").lower() == "true":
            pieces.append(f',"@odata.count":{sum(1 for _ in self._stream(t, where, _compile(where, t), []))}')
        idx = [(c, t.pos[c.name]) for c in cols]
        body_rows = ",".join(
            "{" + ",".join(f'"{c.name}":{_render_json(c, r[p])}' for c, p in idx) + "}" for r in taken
        )
        pieces.append(f',"value":[{body_rows}]')
        want_more = top is None or top > len(taken)
        if self.odata_next_link and more is not None and want_more and len(taken) == page:
            params = dict(q)
            params["$skip"] = str(skip + len(taken))
            if top is not None:
                params["$top"] = str(top - len(taken))
            link = f"{base}/{t.name}?{urlencode(params)}"
            pieces.append(f',"@odata.nextLink":{json.dumps(link)}')
        pieces.append("}")
        return Response(200, "".join(pieces).encode("utf-8"), {
            "Content-Type": "application/json; odata.metadata=minimal; charset=utf-8",
            "OData-Version": "4.0",
        })

    def _metadata(self) -> str:
        types = []
        for t in self.tables.values():
            keys = "".join(f'<PropertyRef Name="{k}"/>' for k in t.key)
            props = "".join(
                f'<Property Name="{c.name}" Type="{_EDM[c.kind]}"'
                + (f' Scale="{c.scale}"' if c.kind == "dec" else "")
                + (' Nullable="false"' if c.name in t.key else "") + "/>"
                for c in t.cols
            )
            types.append(f'<EntityType Name="{t.name}"><Key>{keys}</Key>{props}</EntityType>')
        sets = "".join(f'<EntitySet Name="{n}" EntityType="SYSPRO.{n}"/>' for n in self.tables)
        return ('<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" '
                'xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
                '<Schema Namespace="SYSPRO" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
                + "".join(types) + f'<EntityContainer Name="Container">{sets}</EntityContainer>'
                '</Schema></edmx:DataServices></edmx:Edmx>')
