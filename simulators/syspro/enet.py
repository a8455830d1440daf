"""e.net Solutions REST: Logon, Logoff, GetVersion, GetLogonProfile and COMFND queries, with SYSPRO's habits (every application error an HTTP 200 body starting ``ERROR:``).
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from simulators._http import Request, Response
from simulators.syspro.odata import _parse_bool
from simulators.syspro.sessions import _Session
from simulators.syspro.tables import (
    _block_rows,
    _Col,
    _compile,
    _Desc,
    _index_range,
    _QueryError,
    _render_enet,
    _sortable,
    _Table,
)

ENET_PREFIX = "/SYSPROWCFService/Rest"

# the text is verified (WCF client); the REST framing "ERROR: " + text at HTTP 200 is.

_NOT_LICENSED = "ERROR: e.net exception 100000"  # the prefix seen on a live system; the rest varies

_ENET_HEADERS = {"Content-Type": "application/octet-stream", "Server": "Microsoft-HTTPAPI/2.0"}

_ROOT_ATTRS = (
    "Language='05' Language2='EN' CssStyle='' DecFormat='1' DateFormat='01' Role='01' "
    "Version='{version}' OperatorPrimaryRole='   '"
)

_CONDITIONS = {"EQ": "eq", "NE": "ne", "LT": "lt", "LE": "le", "GT": "gt", "GE": "ge", "LIKE": "like"}


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if isinstance(c.tag, str) and c.tag.lower() == name.lower():
            return c
    return None


def _children(elem: ET.Element | None, name: str) -> list[ET.Element]:
    if elem is None:
        return []
    return [c for c in elem if isinstance(c.tag, str) and c.tag.lower() == name.lower()]


def _text(elem: ET.Element | None) -> str:
    return "" if elem is None or elem.text is None else elem.text


@dataclass
class _Comfnd:
    table: _Table
    columns: list[_Col]
    where: tuple
    order: list[tuple[str, bool]]
    order_echo: list[str]
    return_rows: int


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern.rstrip()]
    return re.compile("".join(parts), re.S)


def _parse_literal(col: _Col, text: str) -> Any:
    """A COMFND <Value> typed by its column; raises ValueError on a bad value."""
    if col.kind == "str":
        return text
    if col.kind == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    if col.kind == "ts":
        t = text.strip()
        if t.lower().startswith("0x"):
            t = t[2:]
        return int(t, 16)
    return Decimal(text.strip())


def _enet_endpoint(sub: str) -> str:
    """The canonical endpoint name for a path under /SYSPROWCFService/Rest (case-insensitive)."""
    names = ("Logon", "Logoff", "GetVersion", "GetLogonProfile", "Query/Query", "Query/Browse",
             "Query/Fetch", "Transaction/Post", "Transaction/PostLD", "Setup/Add", "Setup/Update",
             "Setup/Delete", "Utilities/Run")
    low = sub.strip("/").lower()
    for n in names:
        if n.lower() == low:
            return n
    return "?"


def _redact(query: Mapping[str, str]) -> dict[str, str]:
    secret = {"operatorpassword", "companypassword", "userid"}
    return {k: ("***" if k.lower() in secret and v else v) for k, v in query.items()}


class EnetApi:
    """The e.net REST endpoints of ``SysproSimulator``."""

    def _enet(self, request: Request, endpoint: str) -> Response:
        if endpoint == "?":
            return Response(404, b"Endpoint not found.", {"Content-Type": "text/html"})
        if request.method not in ("GET", "HEAD") and endpoint != "Transaction/PostLD":
            return Response(405, b"Method not allowed.", {"Content-Type": "text/html"})
        # query parameter names match without regard to case.
        q = {k.lower(): v for k, v in request.query.items()}
        try:
            if endpoint == "Logon":
                body = self._logon(q)
            elif endpoint == "Logoff":
                self._session(q.get("userid"))
                self._sessions.pop(q["userid"].rstrip(), None)
                body = "0"
            elif endpoint == "GetVersion":
                body = self.version_string
            elif endpoint == "GetLogonProfile":
                body = self._logon_profile(self._session(q.get("userid")))
            elif endpoint == "Query/Query":
                session = self._session(q.get("userid"))
                if (q.get("businessobject") or "").upper() != "COMFND":
                    raise _QueryError(_NOT_LICENSED)
                with self.company_data(session.company):  # the session's company database
                    body = self._comfnd(q.get("xmlin") or "")
            else:
                # Browse/Fetch/Transaction/Setup: not needed for polling.
                self._session(q.get("userid"))
                raise _QueryError(_NOT_LICENSED)
        except _QueryError as exc:
            body = str(exc)
        encoded = body.encode("cp1252", "xmlcharrefreplace")
        return Response(200, encoded, dict(_ENET_HEADERS))

    def _logon(self, q: Mapping[str, str]) -> str:
        op_code = (q.get("operator") or "").strip().upper()
        company = (q.get("companyid") or "").strip().upper()
        if not op_code or not company:
            raise _QueryError("ERROR: Operator code cannot be blank")
        op = self.operators.get(op_code)
        if op is None:
            raise _QueryError(f"ERROR: Invalid operator '{op_code}'")
        if q.get("operatorpassword", "") != op.get("password", ""):
            raise _QueryError("ERROR: Invalid operator password")
        comp = self.companies.get(company)
        if comp is None or company not in {c.upper() for c in op.get("companies", self.companies)}:
            raise _QueryError(f"ERROR: Invalid company '{company}'")
        if "companypassword" not in q and self.require_company_password:
            raise _QueryError("ERROR: Company password parameter missing")  # [S RECT]
        if q.get("companypassword", "") != comp.get("password", ""):
            raise _QueryError("ERROR: Invalid company password")
        return self._open_session(op_code, company).token

    def _logon_profile(self, s: _Session) -> str:
        comp = self.companies.get(s.company, {})
        fields = {
            "CompanyName": comp.get("name", s.company), "OperatorCode": s.operator,
            "OperatorGroup": "ENET", "OperatorEmailAddress": "", "OperatorLanguageCode": "EN",
            "AccountingDate": self.business_date.isoformat(), "CompanyDate": self.business_date.isoformat(),
            "DefaultApBranch": "10", "DefaultWarehouse": "FG", "LocalCurrencyCode": "$",
            "CurrencyDescription": "Dollar", "DecimalFormat": "1", "DateFormat": "01",
            "DatabaseType": "SQL", "SysproVersion": self.xml_version, "EnetVersion": self.version_string,
        }
        inner = "".join(f"<{k}>{escape(str(v))}</{k}>\n" for k, v in fields.items())
        return f'<?xml version="1.0" encoding="Windows-1252"?>\n<LogonProfile>\n{inner}</LogonProfile>\n '

    def _comfnd(self, xml_in: str) -> str:
        query = self._parse_comfnd(xml_in)
        t = query.table
        pred = _compile(query.where, t)
        rows = self._stream(t, query.where, pred, query.order)
        out = [f'<?xml version="1.0" encoding="Windows-1252"?>\n<{t.name} '
               f"{_ROOT_ATTRS.format(version=self.xml_version)}>\n<HeaderDetails>\n"
               f"<TableName>{t.name}</TableName>\n<Columns>\n"]
        out.extend(f"<Column>{c.name}</Column>\n" for c in query.columns)
        out.append("</Columns>\n")
        if query.order_echo:
            out.append("<OrderBy>\n")
            out.extend(f"<Column>{c}</Column>\n" for c in query.order_echo)
            out.append("</OrderBy>\n")
        out.append("</HeaderDetails>\n")
        idx = [(c, t.pos[c.name]) for c in query.columns]
        n = 0
        cap = min(query.return_rows, self.comfnd_max_rows or query.return_rows)
        for row in rows:
            if n >= cap:
                break
            n += 1
            out.append("<Row>\n")
            for col, p in idx:
                value = _render_enet(col, row[p], self.pad_numbers, self.timestamp_format)
                # No DTD or CDATA tricks: text is escaped, control characters pass through as
                # SQL holds them (which makes the reply ill-formed, as a real one would be).
                out.append(f"<{col.name}>{escape(value)}</{col.name}>\n" if value != ""
                           else f"<{col.name}/>\n")
            out.append("</Row>\n")
        out.append(f"<RowsReturned>{n:8d}</RowsReturned>\n</{t.name}>\n ")  # ends "\n "
        return "".join(out)

    def _parse_comfnd(self, xml_in: str) -> _Comfnd:
        if re.search(r"<!DOCTYPE|<!ENTITY", xml_in, re.I):
            raise _QueryError("ERROR: XML Parse error")
        try:
            root = ET.fromstring(xml_in)
        except ET.ParseError:
            raise _QueryError("ERROR: XML Parse error") from None
        table_name = _text(_child(root, "TableName")).strip()
        try:
            t = self._table(table_name)
        except KeyError:
            raise _QueryError(f"ERROR: Table '{table_name}' not found") from None

        def column(name: str) -> _Col:
            col = t.col(name.strip())
            if col is None or (col.kind == "ts" and not self.comfnd_timestamp):
                raise _QueryError(f"ERROR: Column '{name.strip()}' not found on table '{t.name}'")
            return col

        rr = _text(_child(root, "ReturnRows")).strip()
        return_rows = int(rr) if rr.isdigit() else 1000  # default 1000 when absent
        names = [_text(c) for c in _children(_child(root, "Columns"), "Column")]
        all_cols = _text(_child(root, "AllColumns")).strip().upper() == "Y" or not names
        columns = [c for c in t.cols if c.kind != "ts" or self.comfnd_timestamp] if all_cols \
            else [column(n) for n in names]
        where = self._comfnd_where(_children(_child(root, "Where"), "Expression"), column)
        order_echo = [column(_text(c)).name for c in _children(_child(root, "OrderBy"), "Column")]
        order = [(c, False) for c in order_echo]
        seq = _children(_child(root, "Sequence"), "Column")
        if seq:
            order = [(column(c.get("Name", "")).name, (c.get("Orderby") or "A").upper() == "D") for c in seq]
        if not order:
            order = [(k, False) for k in t.key]
        return _Comfnd(t, columns, where, order, order_echo, return_rows)

    def _comfnd_where(self, expressions: list[ET.Element], column: Callable[[str], _Col]) -> tuple:
        """Expressions -> filter tree: brackets as written, AND before OR (as SQL does)."""
        tokens: list[Any] = []
        for n, expr in enumerate(expressions):
            if n:
                andor = _text(_child(expr, "AndOr")).strip().lower() or "and"
                if andor not in ("and", "or"):
                    raise _QueryError(f"ERROR: Invalid AndOr '{andor}'")
                tokens.append(andor)
            tokens.extend("(" * _text(_child(expr, "OpenBracket")).count("("))
            col = column(_text(_child(expr, "Column")))
            cond = _text(_child(expr, "Condition")).strip().upper() or "EQ"
            if cond not in self.comfnd_conditions or cond not in _CONDITIONS:
                raise _QueryError(f"ERROR: Invalid condition '{cond}'")
            raw = _text(_child(expr, "Value"))
            if cond == "LIKE":
                tokens.append(("like", col.name, _like_regex(raw)))
            else:
                try:
                    value = _parse_literal(col, raw)
                except (ValueError, InvalidOperation):
                    raise _QueryError(f"ERROR: Invalid value '{raw}' for column '{col.name}'") from None
                tokens.append(("cmp", col.name, _CONDITIONS[cond], value))
            tokens.extend(")" * _text(_child(expr, "CloseBracket")).count(")"))
        if not tokens:
            return ("true",)
        try:
            tree, rest = _parse_bool(tokens)
        except (IndexError, ValueError):
            raise _QueryError("ERROR: Invalid Where clause: unbalanced brackets") from None
        if rest:
            raise _QueryError("ERROR: Invalid Where clause: unbalanced brackets")
        return tree

    def _stream(self, t: _Table, where: tuple, pred: Callable[[Sequence[Any]], bool],
                order: list[tuple[str, bool]]) -> Iterator[tuple]:
        """Rows matching ``pred`` in ``order`` (key columns break ties), lazily over bulk rows."""
        eff = list(order) + [(k, False) for k in t.key if k not in {c for c, _ in order}]
        positions = [(t.pos[c], desc) for c, desc in eff]

        def sort_key(row: Sequence[Any]) -> tuple:
            return tuple(_Desc(_sortable(row[p])) if desc else _sortable(row[p]) for p, desc in positions)

        real = sorted((r for r in t.rows.values() if pred(r)), key=sort_key)
        streams: list[Iterable[tuple]] = [real]
        names = tuple(c for c, _ in eff)
        ascending = not any(desc for _, desc in eff)
        for blk in t.blocks:
            if ascending and any(names[: len(o)] == o or o[: len(names)] == names for o in blk.orders):
                lo, hi = _index_range(where, t, blk)
                streams.append(_block_rows(blk, lo, hi, pred))
            else:  # an order the block is not stored in: sort (slow, fine for small tests)
                streams.append(sorted(_block_rows(blk, 0, blk.count, pred), key=sort_key))
        return heapq.merge(*streams, key=sort_key) if len(streams) > 1 else iter(real)
