"""Business events a test or the demo makes happen (an invoice captured, paid, a PO changed, goods received, a GL journal) and the ``/__sim/`` hooks over HTTP.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Sequence

from simulators._http import Request, Response, json_response
from simulators.syspro.seed import _BULK_MAKERS
from simulators.syspro.tables import _jsonable, _to_date


class Control:
    """What tests and the demo make happen in ``SysproSimulator``."""

    def insert_invoice(
        self,
        *,
        supplier: str = "0000001",
        invoice: str | None = None,
        amount: Any = "100.00",
        invoice_date: Any = None,
        journal_date: Any = None,
        due_date: Any = None,
        reference: str = "",
        post_journal: bool = True,
        **columns: Any,
    ) -> dict[str, Any]:
        """Capture a supplier invoice; also posts its AP journal entry (ApJnlSummary).

        Dates default to ``business_date``; the currency and branch come from the supplier.
        Returns the ApInvoice row.
        """
        with self._lock:
            sup = self.get("ApSupplier", supplier) or {}
            jdate = _to_date(journal_date) or self.business_date
            idate = _to_date(invoice_date) or jdate
            terms = int(str(sup.get("TermsCode") or "30").strip() or 30)
            if invoice is None:
                invoice = f"INV-{self._next_invoice:05d}"
                self._next_invoice += 1
            self._next_journal += 1
            journal = self._next_journal
            currency = sup.get("Currency") or "$"
            rate = "1.000000" if currency == "$" else "0.920000"
            row = {
                "Supplier": supplier, "Invoice": invoice, "Branch": sup.get("Branch", "10"),
                "InvoiceDate": idate, "JournalDate": jdate, "Journal": journal,
                "DueDate": _to_date(due_date) or idate + timedelta(days=terms),
                "Reference": reference, "OrigInvValue": amount, "OrigDiscValue": 0,
                "MthInvBal1": amount, "MthInvBal2": 0, "MthInvBal3": 0, "InvoiceStatus": "",
                "Currency": currency, "PostCurrency": currency, "ConvRate": rate, "MulDiv": "M",
                "ExchangeRate": rate, "InvoiceYear": jdate.year, "InvoiceMonth": jdate.month,
                "EntryNumber": 1,
            }
            row.update(columns)
            out = self.upsert("ApInvoice", row)
            if post_journal:
                self.upsert("ApJnlSummary", {
                    "TrnYear": jdate.year, "TrnMonth": jdate.month, "Journal": journal,
                    "EntryNumber": 1, "Supplier": supplier, "Invoice": invoice, "TrnDate": jdate,
                    "TransactionCode": "I", "InvoiceValue": amount, "SupplierGlCode": "20-2100",
                    "AnalysisEntry": 0,
                })
            return out

    def insert_invoices_on(self, day: Any, n: int, **kwargs: Any) -> list[dict[str, Any]]:
        """Capture ``n`` invoices that all carry the same journal date (same-date cursor ties)."""
        d = _to_date(day)
        with self._lock:
            return [self.insert_invoice(journal_date=d, **kwargs) for _ in range(n)]

    def insert_backdated_invoice(self, days_back: int = 10, **kwargs: Any) -> dict[str, Any]:
        """Capture an invoice dated ``days_back`` days before ``business_date`` (back-dated supplier documents are common)."""
        d = self.business_date - timedelta(days=days_back)
        kwargs.setdefault("invoice_date", d)
        kwargs.setdefault("journal_date", d)
        return self.insert_invoice(**kwargs)

    def pay_invoice(self, supplier: str, invoice: str, amount: Any = None, *,
                    on: Any = None) -> dict[str, Any]:
        """Pay an invoice: MthInvBal1 goes down (an update only TimeStamp sees)."""
        with self._lock:
            inv = self.get("ApInvoice", (supplier, invoice))
            if inv is None:
                raise KeyError(f"no invoice {supplier}/{invoice}")
            balance = inv["MthInvBal1"] or Decimal(0)
            pay = balance if amount is None else Decimal(str(amount))
            day = _to_date(on) or self.business_date
            entry = max([r["EntryNumber"] for r in self.rows("ApInvoicePay")
                         if r["Supplier"] == supplier and r["Invoice"] == invoice] or [Decimal(1)]) + 1
            self._next_journal += 1
            self.upsert("ApInvoicePay", {
                "Supplier": supplier, "Invoice": invoice, "EntryNumber": entry, "TrnType": "P",
                "JournalDate": day, "Journal": self._next_journal,
                "PaymentReference": f"EFT{self._next_payment:06d}", "TrnValue": -pay,
                "TrnYear": day.year, "TrnMonth": day.month, "PostValue": -pay,
                "PostCurrency": inv["Currency"], "PaymentNumber": f"{self._next_payment:06d}",
            })
            self._next_payment += 1
            return self.update("ApInvoice", (supplier, invoice), MthInvBal1=balance - pay)

    def set_po_status(self, po: str, status: str) -> dict[str, Any]:
        """Move a purchase order to another OrderStatus code."""
        changes: dict[str, Any] = {"OrderStatus": status}
        if status == "9":
            changes["DatePoCompleted"] = self.business_date
        if status == "*":
            changes["CancelledFlag"] = "Y"
        return self.update("PorMasterHdr", po, **changes)

    def add_po_line(self, po: str, *, stock_code: str, description: str, qty: Any, price: Any,
                    warehouse: str = "FG") -> dict[str, Any]:
        """Add a merchandise line; the header is touched too (NextDetailLine), so it moves on."""
        with self._lock:
            hdr = self.get("PorMasterHdr", po)
            if hdr is None:
                raise KeyError(f"no purchase order {po}")
            lines = [r["Line"] for r in self.rows("PorMasterDetail") if r["PurchaseOrder"] == po]
            row = self.upsert("PorMasterDetail", {
                "PurchaseOrder": po, "Line": max(lines or [Decimal(0)]) + 1, "LineType": "1",
                "MStockCode": stock_code, "MStockDes": description, "MWarehouse": warehouse,
                "MOrderUom": "EA", "MOrderQty": qty, "MReceivedQty": 0, "MPrice": price,
                "MLatestDueDate": hdr["OrderDueDate"], "MLastReceiptDat": None,
                "MCompleteFlag": "", "MGlCode": "",
            })
            self.update("PorMasterHdr", po)
            return row

    def receive_goods(self, po: str, line: int, qty: Any, *, grn: str | None = None,
                      on: Any = None) -> dict[str, Any]:
        """Receive stock against a PO line: a GrnDetails row and the line's MReceivedQty."""
        with self._lock:
            hdr = self.get("PorMasterHdr", po)
            det = self.get("PorMasterDetail", (po, line))
            if hdr is None or det is None:
                raise KeyError(f"no purchase order line {po}/{line}")
            day = _to_date(on) or self.business_date
            qty_d = Decimal(str(qty))
            if grn is None:
                grn = f"{self._next_grn:06d}"
                self._next_grn += 1
            self._next_journal += 1
            self.update("PorMasterDetail", (po, line), MReceivedQty=det["MReceivedQty"] + qty_d,
                        MLastReceiptDat=day)
            return self.upsert("GrnDetails", {
                "Supplier": hdr["Supplier"], "Grn": grn, "GrnSource": "P", "Journal": self._next_journal,
                "JournalEntry": 1, "PurchaseOrder": po, "PurchaseOrderLin": line,
                "StockCode": det["MStockCode"], "StockDescription": det["MStockDes"],
                "Warehouse": det["MWarehouse"], "QtyReceived": qty_d,
                "OrigGrnValue": (qty_d * det["MPrice"]), "DebitRecGlCode": "20-1300",
                "GrnYear": day.year, "GrnMonth": day.month, "OrigReceiptDate": day,
                "PostCurrency": hdr["Currency"], "ConvRate": hdr["ExchangeRate"], "MulDiv": "M",
            })

    def insert_gl_journal(self, entries: Sequence[tuple[str, Any, str]], *, on: Any = None,
                          reference: str = "JNL", posted: bool = True) -> list[dict[str, Any]]:
        """Post a GL journal: ``entries`` are (GlCode, EntryValue, Comment); debits positive."""
        with self._lock:
            day = _to_date(on) or self.business_date
            self._next_gl_journal += 1
            out = []
            for n, (gl, value, comment) in enumerate(entries, start=1):
                out.append(self.upsert("GenJournalDetail", {
                    "GlYear": day.year, "GlPeriod": day.month, "Journal": self._next_gl_journal,
                    "EntryNumber": n, "EntryType": "N", "GlCode": gl, "Reference": reference,
                    "Comment": comment, "EntryValue": value, "EntryDate": day,
                    "EntryPosted": "Y" if posted else "N", "Company": "EDU1", "TransactionDate": day,
                    "DocumentDate": day, "SubModJournal": 0, "AnalysisEntry": 0,
                }))
            return out

    def bulk_generate(self, table: str, n: int, *, start: Any = date(2024, 6, 1),
                      per_day: int = 1000) -> dict[str, Any]:
        """Add ``n`` virtual rows to ApInvoice, PorMasterHdr, GrnDetails, ApJnlSummary or
        GenJournalDetail, ``per_day`` of them per date from ``start``.

        The rows are computed from their index when a query reaches them, so a million rows
        cost a few hundred bytes. They take a contiguous block of rowversions. Bulk purchase
        orders have no detail lines. Returns the block's first and last TimeStamp.
        """
        with self._lock:
            t = self._table(table)
            maker = _BULK_MAKERS.get(t.name)
            if maker is None:
                raise KeyError(f"bulk_generate does not support {t.name}")
            self._bulk_serial += 1
            first = self._rowversion + 1
            self._rowversion += n
            blk = maker(t, self._bulk_serial, first, n, _to_date(start) or date(2024, 6, 1),
                        max(1, per_day), self)
            t.blocks.append(blk)
            self._version += 1
            return {"table": t.name, "rows": n, "first_timestamp": first, "last_timestamp": first + n - 1}

    def _control(self, request: Request, path: str) -> Response:
        body = request.json() or {}
        m, p = request.method, path.rstrip("/")
        if (m, p) == ("POST", "/reset"):
            self.reset()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/sessions"):
            return json_response({"sessions": self.sessions()})
        if (m, p) == ("POST", "/sessions/expire"):
            n = self.expire_sessions(None if body.get("all") else body.get("userId"))
            return json_response({"expired": n})
        if (m, p) == ("POST", "/sessions/evict"):
            self.evict(body["operator"])
            return json_response({"ok": True})
        if (m, p) == ("POST", "/clock"):
            self.advance(float(body.get("advance", 0)))
            return json_response({"now": self.now()})
        if (m, p) == ("POST", "/faults"):
            self.inject(body.pop("kind"), **body)
            return json_response({"ok": True})
        if (m, p) == ("DELETE", "/faults"):
            self.clear_faults()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/requests"):
            return json_response({"counters": dict(self.counters), "log": list(self.request_log)})
        if (m, p) == ("DELETE", "/requests"):
            self.reset_counters()
            return json_response({"ok": True})
        if (m, p) == ("GET", "/rowversion"):
            return json_response({"rowversion": self.rowversion})
        if (m, p) == ("POST", "/invoices"):
            return json_response(_jsonable(self.insert_invoice(**body)))
        if (m, p) == ("POST", "/invoices/batch"):
            rows = self.insert_invoices_on(body.pop("date"), int(body.pop("count")), **body)
            return json_response([_jsonable(r) for r in rows])
        if (m, p) == ("POST", "/invoices/backdated"):
            return json_response(_jsonable(self.insert_backdated_invoice(**body)))
        if (m, p) == ("POST", "/invoices/pay"):
            return json_response(_jsonable(self.pay_invoice(**body)))
        if (m, p) == ("POST", "/po/status"):
            return json_response(_jsonable(self.set_po_status(body["po"], body["status"])))
        if (m, p) == ("POST", "/bulk"):
            return json_response(self.bulk_generate(body.pop("table"), int(body.pop("count")), **body))
        if (m, p) == ("POST", "/password"):
            self.set_password(body["operator"], body.get("password"), odata_password=body.get("odata_password"))
            return json_response({"ok": True})
        tm = re.fullmatch(r"/tables/(\w+)(/rows)?", p)
        if tm:
            table = tm.group(1)
            if m in ("PUT", "POST"):
                rows = body if isinstance(body, list) else [body]
                return json_response([_jsonable(self.upsert(table, r)) for r in rows])
            if m == "PATCH":
                return json_response(_jsonable(self.update(table, tuple(body["key"]), **body["changes"])))
            if m == "DELETE":
                key = tuple((request.query.get("key") or "").split("|"))
                return json_response({"deleted": self.delete(table, key)})
            if m == "GET":
                return json_response([_jsonable(r) for r in self.rows(table)])
        return json_response({"error": f"no hook {m} {path}"}, 404)
