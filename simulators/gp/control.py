"""Business events a test or the demo makes happen (vendors, invoices, batches, payments, POs, receipts, GL entries), synthetic rows, and the ``/__sim/`` hooks over HTTP.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Callable, Sequence

from simulators._http import Request, Response
from simulators.gp.data import (
    _APPROVAL_CODES,
    _BY_NAME,
    _PO_MOVES,
    CURRENCY,
    MAX_UNPAGED_ROWS,
    PO_STATUS,
    _aware,
    _Bulk,
    _Company,
    _day,
    _dumps,
    _gl_line,
    _gl_row,
    _line_tuple,
    _parse_day,
    _payables_row,
    _po_row,
    _public,
    _receipt_row,
    _status_code,
    _vendor_row,
    _vendor_stub,
)
from simulators.gp.soap import OPERATIONS


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


def _operations(value: Any) -> tuple[str, ...]:
    ops = tuple(value)
    unknown = set(ops) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown SOAP operations {sorted(unknown)}")
    return ops


def _control_error(status: int, message: str) -> Response:
    """A control-API error: ``{"ok": false, "error": message}``."""
    return Response(status, _dumps({"ok": False, "error": message}), {"Content-Type": "application/json"})


class Control:
    """What tests and the demo make happen in ``GpSimulator``."""

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

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change response profile and auth knobs at run time; returns the current settings.

        Keys: ``envelope``, ``list_shape``, ``page_size``, ``expose_gl``, ``expose_receipts``,
        ``expose_currencies`` and ``currency_iso_field`` (the currency setup's ISO code under that
        name, or none with None),
        ``advertise``, ``require_cbt``, ``reauth_per_request``, ``error_style``, and for the Web
        Services ``soap_criteria``, ``soap_dates`` and ``soap_operations`` (``soap.py``).
        """
        checks: dict[str, Callable[[Any], Any]] = {
            "envelope": lambda v: _one_of(v, ("payload", "bare"), "envelope"),
            "list_shape": lambda v: _one_of(v, ("array", "object"), "list_shape"),
            "page_size": _page_size,
            "expose_gl": bool,
            "expose_receipts": bool,
            "expose_currencies": bool,
            "currency_iso_field": lambda v: None if v is None else str(v),
            "advertise": _advertise,
            "require_cbt": bool,
            "reauth_per_request": bool,
            "error_style": lambda v: _one_of(v, ("json", "empty"), "error_style"),
            "soap_criteria": lambda v: _one_of(v, ("honoured", "ignored"), "soap_criteria"),
            "soap_dates": lambda v: _one_of(v, ("utc", "naive"), "soap_dates"),
            "soap_operations": _operations,
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
                "expose_currencies": self.expose_currencies, "currency_iso_field": self.currency_iso_field,
                "advertise": list(self.advertise), "require_cbt": self.require_cbt,
                "reauth_per_request": self.reauth_per_request, "error_style": self.error_style,
                "soap_criteria": self.soap_criteria, "soap_dates": self.soap_dates,
                "soap_operations": list(self.soap_operations),
            }

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
