"""The seeded company (``EDU1``) and the virtual rows ``bulk_generate`` adds for benchmarks.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from simulators.syspro.tables import _PO_STATUSES, _Bulk, _Table

if TYPE_CHECKING:
    from simulators.syspro.simulator import SysproSimulator


def _load_seed(sim: SysproSimulator) -> None:
    """Load the seed rows with their TimeStamps, then more documents for a realistic month."""

    later: list[tuple[_Table, dict[str, Any]]] = []

    def put(table: str, rows: list[dict[str, Any]]) -> None:
        # The seed rows keep their TimeStamps; rows without one are written after all of them, so
        # an auto-assigned rowversion can never collide with a listed one.
        t = sim.tables[table]
        for r in rows:
            ts = r.pop("TimeStamp", None)
            if ts is None:
                later.append((t, r))
            else:
                sim._write(t, r, ts=ts)

    sup = ["Supplier", "SupplierName", "SupShortName", "Currency", "TermsCode", "Branch", "OnHold",
           "GrnMatchReqd", "DateSuppAdded", "TimeStamp"]
    put("ApSupplier", [dict(zip(sup, r)) for r in [
        ("0000001", "Bike Parts Wholesale Ltd", "BIKE PARTS", "$", "30", "10", "N", "Y", "2019-03-04", 0x0A1F3C),
        ("0000002", "Accessories Unlimited", "ACCESS UNL", "$", "60", "10", "N", "N", "2020-07-15", 0x0A1F41),
        ("0000003", "Eurotube GmbH", "EUROTUBE", "EUR", "30", "20", "N", "Y", "2022-11-01", 0x0A2003),
        # The distributor's bearing suppliers (not in): non-ASCII cp1252 names and an
        # ampersand, because real supplier names carry them.
        ("0000004", "Müller Wälzlager GmbH", "MUELLER", "EUR", "30", "20", "N", "Y", "2023-02-13", None),
        ("0000005", "Bearings & Seals Ltd", "BEAR&SEAL", "$", "30", "10", "N", "Y", "2023-06-01", None),
        ("0000006", "Nordic Roller Supply AB", "NORDIC", "$", "45", "10", "Y", "N", "2024-01-09", None),
    ]])

    hdr = ["PurchaseOrder", "Supplier", "OrderEntryDate", "OrderDueDate", "OrderStatus", "CancelledFlag",
           "DatePoCompleted", "Buyer", "Warehouse", "Currency", "OrderType", "ExchangeRate", "TimeStamp"]
    put("PorMasterHdr", [dict(zip(hdr, r)) for r in [
        ("000419", "0000001", "2024-05-02", "2024-05-16", "4", "", None, "JDS", "FG", "$", "L", "1.000000", 0x0A2101),
        ("000420", "0000002", "2024-05-03", "2024-05-10", "9", "", "2024-05-10", "JDS", "FG", "$", "L", "1.000000", 0x0A2155),
        ("000421", "0000003", "2024-05-06", "2024-06-20", "*", "Y", None, "MKT", "RM", "EUR", "I", "0.920000", 0x0A2160),
        ("000422", "0000004", "2024-05-20", "2024-06-14", "1", "", None, "MKT", "RM", "EUR", "I", "0.920000", None),
        ("000423", "0000005", "2024-05-27", "2024-06-07", "0", "", None, "JDS", "FG", "$", "L", "1.000000", None),
    ]])

    det = ["PurchaseOrder", "Line", "LineType", "MStockCode", "MStockDes", "MWarehouse", "MOrderUom",
           "MOrderQty", "MReceivedQty", "MPrice", "MLatestDueDate", "MLastReceiptDat", "MCompleteFlag", "MGlCode"]
    put("PorMasterDetail", [dict(zip(det, r)) for r in [
        ("000419", 1, "1", "B100", "Bicycle frame, alloy", "FG", "EA", "50", "20", "125.00000", "2024-05-16", "2024-05-09", "", ""),
        ("000419", 2, "1", "B200", "Brake set, disc", "FG", "EA", "40", "0", "18.75000", "2024-05-16", None, "", ""),
        ("000420", 1, "1", "A100", "Water bottle 750ml", "FG", "EA", "200", "200", "2.40000", "2024-05-10", "2024-05-10", "Y", ""),
        ("000421", 1, "1", "T300", "Chromoly tube 28.6mm", "RM", "M", "120", "0", "9.80000", "2024-06-20", None, "", ""),
        ("000422", 1, "1", "6204-2RS", "Deep groove ball bearing 20x47x14", "RM", "EA", "500", "0", "1.92000", "2024-06-14", None, "", ""),
        ("000422", 2, "1", "UCP208", "Pillow block Ø40mm", "RM", "EA", "24", "0", "14.50000", "2024-06-14", None, "", ""),
        ("000423", 1, "1", "6001-ZZ", "Ball bearing 12x28x8, shielded", "FG", "EA", "1000", "0", "0.61000", "2024-06-07", None, "", ""),
    ]])

    so = ["SalesOrder", "Customer", "CustomerName", "OrderStatus", "OrderDate", "ReqShipDate", "Currency",
          "CustomerPoNumber", "Salesperson", "Branch", "Warehouse"]
    put("SorMaster", [dict(zip(so, r)) for r in [
        ("000512", "0000010", "Cycle World Retail", "1", "2024-05-06", "2024-05-13", "$", "CW-7781", "SMP", "10", "FG"),
        ("000513", "0000011", "Fahrrad & Sport Köln", "4", "2024-05-08", "2024-05-20", "EUR", "FSK-2024-118", "MKT", "20", "FG"),
    ]])
    sod = ["SalesOrder", "SalesOrderLine", "MStockCode", "MStockDes", "MWarehouse", "MOrderQty", "MShipQty", "MPrice"]
    put("SorDetail", [dict(zip(sod, r)) for r in [
        ("000512", 1, "B100", "Bicycle frame, alloy", "FG", "4", "0", "189.00000"),
        ("000512", 2, "A100", "Water bottle 750ml", "FG", "24", "0", "4.95000"),
        ("000513", 1, "6204-2RS", "Deep groove ball bearing 20x47x14", "FG", "100", "0", "3.10000"),
    ]])

    grn = ["Supplier", "Grn", "GrnSource", "Journal", "JournalEntry", "PurchaseOrder", "PurchaseOrderLin",
           "StockCode", "StockDescription", "Warehouse", "QtyReceived", "OrigGrnValue", "DebitRecGlCode",
           "GrnYear", "GrnMonth", "OrigReceiptDate", "PostCurrency", "ConvRate", "MulDiv"]
    put("GrnDetails", [dict(zip(grn, r)) for r in [
        ("0000001", "000123", "P", 1542, 1, "000419", 1, "B100", "Bicycle frame, alloy", "FG", "20", "2500.00", "20-1300", 2024, 5, "2024-05-09", "$", "1.000000", "M"),
        ("0000002", "000124", "P", 1545, 1, "000420", 1, "A100", "Water bottle 750ml", "FG", "200", "480.00", "20-1300", 2024, 5, "2024-05-10", "$", "1.000000", "M"),
    ]])
    put("GrnMatching", [{"Supplier": "0000001", "Grn": "000123", "TransactionType": "P", "Journal": 1542,
                         "EntryNumber": 1, "Invoice": "INV-88213", "MatchedValue": "2500.00",
                         "MatchedYear": 2024, "MatchedMonth": 5}])
    put("InvWarehouse", [
        {"StockCode": "B100", "Warehouse": "FG", "QtyOnHand": 120, "QtyAllocated": 10, "QtyOnOrder": 30,
         "UnitCost": "118.50", "DateLastStockMove": "2024-05-09", "DateLastPurchase": "2024-05-09",
         "DateLastSale": "2024-05-07", "TimeStamp": 0x0A2110},
        {"StockCode": "A100", "Warehouse": "FG", "QtyOnHand": 640, "QtyAllocated": 0, "QtyOnOrder": 0,
         "UnitCost": "2.38", "DateLastStockMove": "2024-05-10", "DateLastPurchase": "2024-05-10",
         "DateLastSale": "2024-05-03", "TimeStamp": 0x0A2158},
    ])

    inv = ["Supplier", "Invoice", "Branch", "InvoiceDate", "JournalDate", "Journal", "DueDate", "Reference",
           "OrigInvValue", "OrigDiscValue", "MthInvBal1", "MthInvBal2", "MthInvBal3", "InvoiceStatus",
           "Currency", "PostCurrency", "ConvRate", "MulDiv", "ExchangeRate", "InvoiceYear", "InvoiceMonth",
           "TimeStamp"]
    put("ApInvoice", [dict(zip(inv, r), EntryNumber=1) for r in [
        ("0000001", "INV-88213", "10", "2024-05-08", "2024-05-10", 311, "2024-06-07", "PO 000419", "2875.00", 0, "2875.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, 0x0A2171),
        ("0000002", "55-0192", "10", "2024-05-11", "2024-05-13", 312, "2024-07-10", "PO 000420", "552.00", 0, "0.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, 0x0A21C9),
        ("0000003", "RE2024-0456", "20", "2024-04-29", "2024-05-14", 313, "2024-05-29", "Tubing sample", "1840.00", 0, "1840.00", 0, 0, "", "EUR", "EUR", "0.920000", "M", "0.920000", 2024, 5, 0x0A21D0),
        ("0000004", "RG-24-1187", "20", "2024-05-21", "2024-05-22", 314, "2024-06-20", "Wälzlager Mai", "1296.40", 0, "1296.40", 0, 0, "", "EUR", "EUR", "0.920000", "M", "0.920000", 2024, 5, None),
        ("0000005", "BS/0981", "10", "2024-05-24", "2024-05-27", 315, "2024-06-26", "Seals & bearings", "742.15", 0, "742.15", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, None),
        ("0000005", "BS/0982", "10", "2024-05-24", "2024-05-27", 316, "2024-06-26", "Freight", "85.00", 0, "85.00", 0, 0, "", "$", "$", "1.000000", "M", "1.000000", 2024, 5, None),
    ]])
    put("ApInvoicePay", [{"Supplier": "0000002", "Invoice": "55-0192", "EntryNumber": 2, "TrnType": "P",
                          "JournalDate": "2024-05-31", "Journal": 330, "PaymentReference": "EFT000871",
                          "TrnValue": "-552.00", "TrnYear": 2024, "TrnMonth": 5, "PostValue": "-552.00",
                          "PostCurrency": "$", "PaymentNumber": "000045"}])

    jnl = ["TrnYear", "TrnMonth", "Journal", "EntryNumber", "Supplier", "Invoice", "TrnDate", "TransactionCode",
           "InvoiceValue", "SupplierGlCode", "AnalysisEntry"]
    put("ApJnlSummary", [dict(zip(jnl, r)) for r in [
        (2024, 5, 311, 1, "0000001", "INV-88213", "2024-05-10", "I", "2875.00", "20-2100", 0),
        (2024, 5, 312, 1, "0000002", "55-0192", "2024-05-13", "I", "552.00", "20-2100", 0),
        (2024, 5, 313, 1, "0000003", "RE2024-0456", "2024-05-14", "I", "1840.00", "20-2100", 0),
        (2024, 5, 314, 1, "0000004", "RG-24-1187", "2024-05-22", "I", "1296.40", "20-2100", 0),
        (2024, 5, 315, 1, "0000005", "BS/0981", "2024-05-27", "I", "742.15", "20-2100", 0),
        (2024, 5, 316, 1, "0000005", "BS/0982", "2024-05-27", "I", "85.00", "20-2100", 0),
    ]])
    dist = ["TrnYear", "TrnMonth", "Journal", "EntryNumber", "SubEntry", "ExpenseGlCode", "DistrValue",
            "ExpenseType", "Reference", "AnalysisEntry"]
    put("ApJnlDistrib", [dict(zip(dist, r)) for r in [
        (2024, 5, 311, 1, 1, "20-1300", "2500.00", "M", "000123", 0),
        (2024, 5, 311, 1, 2, "20-2400", "375.00", "T", "VAT 15%", 0),
    ]])
    gm = ["Company", "GlCode", "Description", "AccountType", "GlGroup", "CurrentBalance", "PtdDrValue",
          "PtdCrValue", "PrevPerEndBal"]
    put("GenMaster", [dict(zip(gm, r)) for r in [
        ("EDU1", "20-1300", "GRN suspense", "L", "CURLIAB", "-480.00", "2500.00", "-2980.00", "0.00"),
        ("EDU1", "20-2100", "Trade creditors control", "L", "CURLIAB", "-4715.00", "552.00", "-5267.00", "-1200.00"),
        ("EDU1", "20-2400", "VAT input", "A", "CURASS", "375.00", "375.00", "0.00", "0.00"),
    ]])
    gj = ["GlYear", "GlPeriod", "Journal", "EntryNumber", "EntryType", "GlCode", "Reference", "Comment",
          "EntryValue", "EntryDate", "EntryPosted", "Company", "TransactionDate", "DocumentDate",
          "SubModJournal", "AnalysisEntry"]
    put("GenJournalDetail", [dict(zip(gj, r)) for r in [
        (2024, 5, 12, 1, "N", "20-2400", "VATADJ-05", "VAT correction", "15.00", "2024-05-28", "Y", "EDU1", "2024-05-28", "2024-05-28", 0, 0),
        (2024, 5, 12, 2, "N", "20-2100", "VATADJ-05", "VAT correction", "-15.00", "2024-05-28", "Y", "EDU1", "2024-05-28", "2024-05-28", 0, 0),
        (2024, 5, 13, 1, "N", "20-1300", "ACCR-05", "GRN accrual reversal", "-480.00", "2024-05-31", "N", "EDU1", "2024-05-31", "2024-05-31", 0, 0),
        (2024, 5, 13, 2, "N", "20-2100", "ACCR-05", "GRN accrual reversal", "480.00", "2024-05-31", "N", "EDU1", "2024-05-31", "2024-05-31", 0, 0),
    ]])
    for t, r in later:
        sim._write(t, r)


_BULK_SUPPLIERS = ("0000001", "0000002", "0000004", "0000005")


def _bulk_common(t: _Table, first_ts: int, n: int, fill: Callable[[int], dict[str, Any]],
                 monotone: Iterable[str], orders: Iterable[tuple[str, ...]],
                 index_of: Callable[[tuple], int | None]) -> _Bulk:
    cols = t.cols
    ts_pos = t.ts_pos

    def make(i: int) -> tuple:
        values = fill(i)
        row = [values.get(c.name, "" if c.kind == "str" else None) for c in cols]
        row[ts_pos] = first_ts + i
        return tuple(row)

    return _Bulk(first_ts, n, make, frozenset(monotone) | {"TimeStamp"},
                 (("TimeStamp",), *orders), index_of)


def _serial_index(prefix: str, n: int, width: int = 9) -> Callable[[str], int | None]:
    def index(text: str) -> int | None:
        if not text.startswith(prefix) or not text[len(prefix):].isdigit():
            return None
        i = int(text[len(prefix):])
        return i if 0 <= i < n and text == f"{prefix}{i:0{width}d}" else None

    return index


def _bulk_ap_invoice(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
                     sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}-"
    index = _serial_index(prefix, n)
    q2 = Decimal("0.01")

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        # Suppliers step up within a day, so (JournalDate, Supplier, Invoice) follows i.
        supplier = _BULK_SUPPLIERS[(i % per_day) * len(_BULK_SUPPLIERS) // per_day]
        amount = (Decimal(1000 + (i * 7919) % 250000) / 100).quantize(q2)
        return {
            "Supplier": supplier, "Invoice": f"{prefix}{i:09d}", "Branch": "10",
            "InvoiceDate": day - timedelta(days=2), "JournalDate": day, "Journal": Decimal(1000 + i // 100),
            "DueDate": day + timedelta(days=30), "Reference": f"Bulk {i}", "OrigInvValue": amount,
            "OrigDiscValue": Decimal("0.00"), "MthInvBal1": amount, "MthInvBal2": Decimal("0.00"),
            "MthInvBal3": Decimal("0.00"), "Currency": "$", "PostCurrency": "$",
            "ConvRate": Decimal("1.000000"), "MulDiv": "M", "ExchangeRate": Decimal("1.000000"),
            "InvoiceYear": Decimal(day.year), "InvoiceMonth": Decimal(day.month), "EntryNumber": Decimal(1),
        }

    def index_of(key: tuple) -> int | None:
        i = index(key[1][1]) if key[1][0] == 1 else None
        return i if i is not None and fill(i)["Supplier"] == key[0][1] else None

    return _bulk_common(t, first_ts, n, fill, ("JournalDate", "InvoiceDate", "DueDate", "Invoice"),
                        [("JournalDate", "Supplier", "Invoice"), ("InvoiceDate", "Supplier", "Invoice"),
                         ("Invoice",)], index_of)


def _bulk_po(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
             sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}"
    index = _serial_index(prefix, n)

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        return {
            "PurchaseOrder": f"{prefix}{i:09d}", "Supplier": _BULK_SUPPLIERS[i % len(_BULK_SUPPLIERS)],
            "OrderEntryDate": day, "OrderDueDate": day + timedelta(days=14),
            "OrderStatus": _PO_STATUSES[i % len(_PO_STATUSES)], "CancelledFlag": "", "Buyer": "JDS",
            "Warehouse": "FG", "Currency": "$", "OrderType": "L", "ExchangeRate": Decimal("1.000000"),
        }

    return _bulk_common(t, first_ts, n, fill, ("OrderEntryDate", "OrderDueDate", "PurchaseOrder"),
                        [("OrderEntryDate", "PurchaseOrder"), ("PurchaseOrder",)],
                        lambda key: index(key[0][1]) if key[0][0] == 1 else None)


def _bulk_grn(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
              sim: SysproSimulator) -> _Bulk:
    prefix = f"B{serial:02d}"
    index = _serial_index(prefix, n)

    def fill(i: int) -> dict[str, Any]:
        day = start + timedelta(days=i // per_day)
        qty = Decimal(1 + i % 50)
        return {
            "Supplier": _BULK_SUPPLIERS[(i % per_day) * len(_BULK_SUPPLIERS) // per_day],
            "Grn": f"{prefix}{i:09d}", "GrnSource": "P", "Journal": Decimal(serial * 10_000_000 + i // 100),
            "JournalEntry": Decimal(i % 100 + 1), "PurchaseOrder": "000419", "PurchaseOrderLin": Decimal(1),
            "StockCode": "6204-2RS", "StockDescription": "Deep groove ball bearing 20x47x14",
            "Warehouse": "FG", "QtyReceived": qty.quantize(Decimal("0.000001")),
            "OrigGrnValue": (qty * Decimal("1.92")).quantize(Decimal("0.01")), "DebitRecGlCode": "20-1300",
            "GrnYear": Decimal(day.year), "GrnMonth": Decimal(day.month), "OrigReceiptDate": day,
            "PostCurrency": "$", "ConvRate": Decimal("1.000000"), "MulDiv": "M",
        }

    def index_of(key: tuple) -> int | None:
        i = index(key[1][1]) if key[1][0] == 1 else None
        return i if i is not None and t.key_of(_bulk_row(fill(i), t)) == key else None

    return _bulk_common(t, first_ts, n, fill, ("OrigReceiptDate", "Grn", "Journal", "GrnYear"),
                        [("OrigReceiptDate", "Supplier", "Grn")], index_of)


def _bulk_row(values: Mapping[str, Any], t: _Table) -> tuple:
    return tuple(values.get(c.name) for c in t.cols)


def _bulk_journal(year_col: str, month_col: str, date_col: str, value_col: str,
                  extra: Callable[[int, date], dict[str, Any]]) -> Callable[..., _Bulk]:
    def maker(t: _Table, serial: int, first_ts: int, n: int, start: date, per_day: int,
              sim: SysproSimulator) -> _Bulk:
        base = serial * 10_000_000

        def fill(i: int) -> dict[str, Any]:
            day = start + timedelta(days=i // per_day)
            values = {
                year_col: Decimal(day.year), month_col: Decimal(day.month),
                "Journal": Decimal(base + i // 100), "EntryNumber": Decimal(i % 100 + 1),
                date_col: day, value_col: (Decimal(500 + (i * 7919) % 99000) / 100).quantize(Decimal("0.01")),
                "AnalysisEntry": Decimal(0),
            }
            values.update(extra(i, day))
            return values

        def index_of(key: tuple) -> int | None:
            try:
                journal, entry = int(key[2][1]), int(key[3][1])
            except (TypeError, ValueError, IndexError):
                return None
            i = (journal - base) * 100 + entry - 1
            if not (0 <= i < n) or not (1 <= entry <= 100):
                return None
            return i if t.key_of(_bulk_row(fill(i), t)) == key else None

        key_order = tuple(t.key)
        return _bulk_common(t, first_ts, n, fill, (date_col, year_col, "Journal"),
                            [(date_col, *key_order), key_order], index_of)

    return maker


_BULK_MAKERS: dict[str, Callable[..., _Bulk]] = {
    "ApInvoice": _bulk_ap_invoice,
    "PorMasterHdr": _bulk_po,
    "GrnDetails": _bulk_grn,
    "ApJnlSummary": _bulk_journal(
        "TrnYear", "TrnMonth", "TrnDate", "InvoiceValue",
        lambda i, day: {"Supplier": _BULK_SUPPLIERS[i % len(_BULK_SUPPLIERS)], "Invoice": f"BJ-{i:09d}",
                        "TransactionCode": "I", "SupplierGlCode": "20-2100"}),
    "GenJournalDetail": _bulk_journal(
        "GlYear", "GlPeriod", "EntryDate", "EntryValue",
        lambda i, day: {"EntryType": "N", "GlCode": ("20-2100", "20-1300", "20-2400")[i % 3],
                        "Reference": f"BULK-{i // 100}", "Comment": "Bulk journal line", "EntryPosted": "Y",
                        "Company": "EDU1", "TransactionDate": day, "DocumentDate": day,
                        "SubModJournal": Decimal(0)}),
}
