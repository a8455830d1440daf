"""GP Web Services (SOAP) on the legacy endpoint: a hand-written WSDL subset and its operations.

``POST /DynamicsGPWebServices/DynamicsGPService.asmx`` behind the same Windows authentication as
the REST service; ``GET …asmx?wsdl`` serves the WSDL. Names follow GP's legacy namespace and
.NET type spellings (``ArrayOfVendorSummary``, ``BetweenRestrictionOfNullableOfDateTime``); the
documents are the simulator's stored rows, written out by the type table below, so both
transports read the same company.

Operations: ``GetWSEnabledCompanyForUserList``, ``Get<X>List`` (criteria ``ModifiedDate`` with
``GreaterThan``/``From``/``To``/``LessThan``, list restrictions on ``TransactionState`` and
``Type``) and ``Get<X>ByKey`` for vendors, payables documents, purchase orders, receipts and GL
transactions, and ``GetLoggedValidationResultByKey``.

What is not known about the real service is a setting (``configure``):

* ``soap_criteria``: ``"honoured"`` filters lists on ``ModifiedDate`` and the list restrictions;
  ``"ignored"`` returns every document (which column ``ModifiedDate`` compares is unknown);
* ``soap_dates``: ``"utc"`` writes stamps as stored (``…Z``); ``"naive"`` drops the offset, as a
  .NET ``DateTime`` read from SQL Server is written;
* ``soap_operations``: the operations this site's WSDL has (a site without GL in its WSDL).

Faults, both kinds GP has: a *system* fault (generic text, details only in the server's log),
and a *validation* fault carrying a ``LogId`` whose detail ``GetLoggedValidationResultByKey``
returns. A date-only ``ModifiedDate`` criterion is a validation fault (the documentation asks for
date and time). Injected faults ``soap_system``, ``soap_validation`` and ``soap_denied`` (the GP
user's security role lacks the operation) match on ``…asmx/<Operation>``.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping, Sequence

from simulators._http import Request, Response
from simulators.gp.auth import _User
from simulators.gp.data import _APPROVAL, PO_STATUS, _aware, _bulk_row, _Company

SOAP_PATH = "/DynamicsGPWebServices/DynamicsGPService.asmx"
NS = "http://schemas.microsoft.com/dynamics/gp/2006/01"
_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"

_S = ("string", "int", "decimal", "boolean", "dateTime")
_ID_KEYS = (
    "VendorKey", "PayablesDocumentKey", "PurchaseOrderKey", "PurchaseReceiptKey", "VendorClassKey", "PaymentTermsKey",
    "CurrencyKey", "BuyerKey", "ItemKey", "WarehouseKey", "GLAccountNumberKey", "SourceDocumentKey",
    "ValidationResultKey",
)
_ENUMS = {
    "PayablesTransactionState": ("Work", "Open", "History"),
    "GLTransactionState": ("Work", "Open", "History"),
    "PurchaseTransactionState": ("Work", "History"),
    "PayablesDocumentType": ("Invoice", "Finance Charge", "Miscellaneous Charge", "Return", "Credit Memo", "Payment"),
}
_MONEY = "MoneyAmount"
# Complex types: element name -> type; ``[X]`` is ``ArrayOfX`` holding ``X`` elements.
TYPES: dict[str, tuple[tuple[str, Any], ...]] = {
    **{k: (("Id", "string"),) for k in _ID_KEYS},
    "CompanyKey": (("Id", "int"),),
    "BatchKey": (("Id", "string"), ("Source", "string")),
    "GLTransactionKey": (("JournalId", "int"), ("Date", "dateTime")),
    _MONEY: (("Currency", "string"), ("DecimalDigits", "int"), ("Value", "decimal")),
    "PhoneNumber": (("Value", "string"),),
    "ApprovalWorkflow": (("Status", "string"), ("WorkflowName", "string")),
    "Context": (("OrganizationKey", "CompanyKey"), ("CultureName", "string"), ("CurrencyType", "string"),
                ("TenantName", "string")),
    "CompanySummary": (("Key", "CompanyKey"), ("Name", "string")),
    "ValidationError": (("Id", "int"), ("Message", "string")),
    "ValidationResult": (("Key", "ValidationResultKey"), ("Errors", ["ValidationError"])),
    "BetweenRestrictionOfNullableOfDateTime": tuple(
        (n, "dateTime") for n in ("EqualValue", "NotEqualValue", "From", "To", "GreaterThan", "LessThan")),
    **{f"ListRestrictionOfNullableOf{e}": (("Items", [e]),) for e in _ENUMS},
    "VendorCriteria": (("ModifiedDate", "BetweenRestrictionOfNullableOfDateTime"),),
    "PayablesDocumentCriteria": (("ModifiedDate", "BetweenRestrictionOfNullableOfDateTime"),
                                 ("TransactionState", "ListRestrictionOfNullableOfPayablesTransactionState"),
                                 ("Type", "ListRestrictionOfNullableOfPayablesDocumentType")),
    "PurchaseOrderCriteria": (("ModifiedDate", "BetweenRestrictionOfNullableOfDateTime"),
                              ("TransactionState", "ListRestrictionOfNullableOfPurchaseTransactionState")),
    "PurchaseReceiptCriteria": (("ModifiedDate", "BetweenRestrictionOfNullableOfDateTime"),
                                ("TransactionState", "ListRestrictionOfNullableOfPurchaseTransactionState")),
    "GLTransactionCriteria": (("ModifiedDate", "BetweenRestrictionOfNullableOfDateTime"),
                              ("TransactionState", "ListRestrictionOfNullableOfGLTransactionState")),
    "VendorSummary": (("Key", "VendorKey"), ("Name", "string"), ("ClassKey", "VendorClassKey"),
                      ("IsActive", "boolean"), ("IsOnHold", "boolean"), ("IsOneTime", "boolean"),
                      ("State", "string"), ("PhoneNumbers", ["PhoneNumber"]), ("CreatedDate", "dateTime"),
                      ("ModifiedDate", "dateTime")),
    "Vendor": (("Key", "VendorKey"), ("Name", "string"), ("ClassKey", "VendorClassKey"), ("IsActive", "boolean"),
               ("IsOnHold", "boolean"), ("IsOneTime", "boolean"), ("City", "string"), ("State", "string"),
               ("CountryRegion", "string"), ("PhoneNumbers", ["PhoneNumber"]), ("PaymentTermsKey", "PaymentTermsKey"),
               ("CurrencyKey", "CurrencyKey"), ("CreatedDate", "dateTime"), ("ModifiedDate", "dateTime"),
               ("Workflows", ["ApprovalWorkflow"])),
    "PayablesDocumentSummary": (("Key", "PayablesDocumentKey"), ("Type", "string"), ("TransactionState", "string"),
                                ("BatchKey", "BatchKey"), ("Date", "dateTime"), ("DocumentAmount", _MONEY),
                                ("ModifiedDate", "dateTime"), ("VendorKey", "VendorKey"), ("VendorName", "string")),
    "PayablesInvoice": (("Key", "PayablesDocumentKey"), ("TransactionState", "string"), ("VendorKey", "VendorKey"),
                        ("VendorName", "string"), ("VendorDocumentNumber", "string"), ("BatchKey", "BatchKey"),
                        ("Date", "dateTime"), ("GeneralLedgerPostingDate", "dateTime"), ("DueDate", "dateTime"),
                        ("DocumentAmount", _MONEY), ("CurrentTrxAmount", _MONEY), ("PONumber", "string"),
                        ("IsVoided", "boolean"), ("OnHold", "boolean"), ("PostedDate", "dateTime"),
                        ("PostedBy", "string"), ("ModifiedBy", "string"), ("ModifiedDate", "dateTime"),
                        ("Workflows", ["ApprovalWorkflow"])),
    "PurchaseOrderSummary": (("Key", "PurchaseOrderKey"), ("Type", "string"), ("Status", "string"),
                             ("TransactionState", "string"), ("VendorKey", "VendorKey"), ("BuyerKey", "BuyerKey"),
                             ("Date", "dateTime"), ("RequestedDate", "dateTime"), ("RemainingSubtotal", _MONEY),
                             ("CreatedDate", "dateTime"), ("ModifiedDate", "dateTime")),
    "PurchaseOrderLine": (("LineSequenceNumber", "int"), ("ItemKey", "ItemKey"), ("ItemDescription", "string"),
                          ("QuantityOrdered", "decimal"), ("UnitCost", _MONEY), ("ExtendedCost", _MONEY),
                          ("SiteKey", "WarehouseKey"), ("RequiredDate", "dateTime")),
    "PurchaseOrder": (("Key", "PurchaseOrderKey"), ("Type", "string"), ("Status", "string"),
                      ("TransactionState", "string"), ("VendorKey", "VendorKey"), ("VendorName", "string"),
                      ("Date", "dateTime"), ("RequestedDate", "dateTime"), ("BuyerKey", "BuyerKey"),
                      ("Subtotal", _MONEY), ("RemainingSubtotal", _MONEY), ("IsOnHold", "boolean"),
                      ("RevisionNumber", "int"), ("Workflows", ["ApprovalWorkflow"]),
                      ("Lines", ["PurchaseOrderLine"]), ("CreatedDate", "dateTime"), ("ModifiedDate", "dateTime")),
    "PurchaseReceiptSummary": (("Key", "PurchaseReceiptKey"), ("Type", "string"), ("TransactionState", "string"),
                               ("VendorKey", "VendorKey"), ("VendorDocumentNumber", "string"),
                               ("ReceiptDate", "dateTime"), ("ModifiedDate", "dateTime")),
    "PurchaseReceiptLine": (("LineNumber", "int"), ("PONumber", "string"), ("ItemKey", "ItemKey"),
                            ("ItemDescription", "string"), ("QuantityShipped", "decimal"), ("UnitCost", _MONEY),
                            ("ExtendedCost", _MONEY), ("SiteKey", "WarehouseKey")),
    "PurchaseReceipt": (("Key", "PurchaseReceiptKey"), ("Type", "string"), ("TransactionState", "string"),
                        ("VendorKey", "VendorKey"), ("VendorName", "string"), ("VendorDocumentNumber", "string"),
                        ("ReceiptDate", "dateTime"), ("GeneralLedgerPostingDate", "dateTime"),
                        ("VoucherNumber", "string"), ("Subtotal", _MONEY), ("Lines", ["PurchaseReceiptLine"]),
                        ("CreatedDate", "dateTime"), ("ModifiedDate", "dateTime")),
    "GLTransactionSummary": (("Key", "GLTransactionKey"), ("BatchKey", "BatchKey"), ("CurrencyKey", "CurrencyKey"),
                             ("LedgerType", "string"), ("ModifiedDate", "dateTime"), ("Reference", "string"),
                             ("SourceDocumentKey", "SourceDocumentKey"), ("TransactionState", "string")),
    "GLTransactionLine": (("SequenceNumber", "int"), ("GLAccountKey", "GLAccountNumberKey"),
                          ("Description", "string"), ("DebitAmount", _MONEY), ("CreditAmount", _MONEY)),
    "GLTransaction": (("Key", "GLTransactionKey"), ("TransactionState", "string"), ("LedgerType", "string"),
                      ("SourceDocumentKey", "SourceDocumentKey"), ("Reference", "string"),
                      ("TransactionDate", "dateTime"), ("FiscalPeriod", "string"),
                      ("OriginatingPostedDate", "dateTime"), ("BatchKey", "BatchKey"), ("IsVoided", "boolean"),
                      ("BackOutJournalId", "int"), ("OriginalJournalId", "int"), ("CurrencyKey", "CurrencyKey"),
                      ("Lines", ["GLTransactionLine"]), ("ModifiedDate", "dateTime")),
}

# Operation -> (table, criteria type, summary type, document type, key type); the company list
# and the validation log are answered apart.
_DOCS: dict[str, tuple[str, str, str, str, str]] = {
    "Vendor": ("vendors", "VendorCriteria", "VendorSummary", "Vendor", "VendorKey"),
    "PayablesDocument": ("payables", "PayablesDocumentCriteria", "PayablesDocumentSummary", "PayablesInvoice",
                         "PayablesDocumentKey"),
    "PurchaseOrder": ("purchase_orders", "PurchaseOrderCriteria", "PurchaseOrderSummary", "PurchaseOrder",
                      "PurchaseOrderKey"),
    "PurchaseReceipt": ("receipts", "PurchaseReceiptCriteria", "PurchaseReceiptSummary", "PurchaseReceipt",
                        "PurchaseReceiptKey"),
    "GLTransaction": ("gl", "GLTransactionCriteria", "GLTransactionSummary", "GLTransaction", "GLTransactionKey"),
}
# The by-key operation of payables invoices is named for the invoice, not the document.
_BY_KEY = {f"Get{'PayablesInvoice' if n == 'PayablesDocument' else n}ByKey": n for n in _DOCS}
_LISTS = {f"Get{n}List": n for n in _DOCS}
OPERATIONS = (
    "GetWSEnabledCompanyForUserList", "GetLoggedValidationResultByKey", *_LISTS, *_BY_KEY,
)


def wsdl(location: str, operations: Sequence[str] = OPERATIONS) -> bytes:
    """The WSDL of the operations this site offers, with ``location`` as the service address."""
    x = ['<?xml version="1.0" encoding="utf-8"?>',
         f'<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
         f'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:s="http://www.w3.org/2001/XMLSchema" '
         f'xmlns:tns="{NS}" targetNamespace="{NS}">',
         f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{NS}">']
    arrays: set[str] = set()
    for name, fields in TYPES.items():
        x.append(f'<s:complexType name="{name}"><s:sequence>')
        for field, kind in fields:
            if isinstance(kind, list):
                arrays.add(kind[0])
                ref = f"tns:ArrayOf{kind[0]}"
            else:
                ref = f"s:{kind}" if kind in _S else f"tns:{kind}"
            x.append(f'<s:element minOccurs="0" maxOccurs="1" name="{field}" nillable="true" type="{ref}"/>')
        x.append("</s:sequence></s:complexType>")
    arrays.update(d[2] for d in _DOCS.values())
    arrays.add("CompanySummary")
    for item in sorted(arrays):
        ref = "s:string" if item in _ENUMS else f"tns:{item}"
        x.append(f'<s:complexType name="ArrayOf{item}"><s:sequence><s:element minOccurs="0" maxOccurs="unbounded" '
                 f'name="{item}" nillable="true" type="{ref}"/></s:sequence></s:complexType>')
    for op in operations:
        params, result = _signature(op)
        x.append(f'<s:element name="{op}"><s:complexType><s:sequence>')
        x.extend(f'<s:element minOccurs="0" maxOccurs="1" name="{p}" type="tns:{t}"/>' for p, t in params)
        x.append('<s:element minOccurs="0" maxOccurs="1" name="context" type="tns:Context"/>')
        x.append(f'</s:sequence></s:complexType></s:element><s:element name="{op}Response"><s:complexType>'
                 f'<s:sequence><s:element minOccurs="0" maxOccurs="1" name="{op}Result" type="tns:{result}"/>'
                 "</s:sequence></s:complexType></s:element>")
    x.append("</s:schema></wsdl:types>")
    for op in operations:
        x.append(f'<wsdl:message name="{op}SoapIn"><wsdl:part name="parameters" element="tns:{op}"/></wsdl:message>'
                 f'<wsdl:message name="{op}SoapOut"><wsdl:part name="parameters" element="tns:{op}Response"/>'
                 "</wsdl:message>")
    x.append('<wsdl:portType name="DynamicsGPSoap">')
    x.extend(f'<wsdl:operation name="{op}"><wsdl:input message="tns:{op}SoapIn"/>'
             f'<wsdl:output message="tns:{op}SoapOut"/></wsdl:operation>' for op in operations)
    x.append('</wsdl:portType><wsdl:binding name="DynamicsGPSoap" type="tns:DynamicsGPSoap">'
             '<soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>')
    x.extend(f'<wsdl:operation name="{op}"><soap:operation soapAction="{NS}/{op}" style="document"/>'
             '<wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/>'
             "</wsdl:output></wsdl:operation>" for op in operations)
    x.append('</wsdl:binding><wsdl:service name="DynamicsGP"><wsdl:port name="DynamicsGPSoap" '
             f'binding="tns:DynamicsGPSoap"><soap:address location="{_escape(location)}"/></wsdl:port>'
             "</wsdl:service></wsdl:definitions>")
    return "".join(x).encode("utf-8")


def _signature(op: str) -> tuple[list[tuple[str, str]], str]:
    if op == "GetWSEnabledCompanyForUserList":
        return [], "ArrayOfCompanySummary"
    if op == "GetLoggedValidationResultByKey":
        return [("key", "ValidationResultKey")], "ValidationResult"
    if op in _LISTS:
        _, criteria, summary, _, _ = _DOCS[_LISTS[op]]
        return [("criteria", criteria)], f"ArrayOf{summary}"
    _, _, _, document, key = _DOCS[_BY_KEY[op]]
    return [("key", key)], document


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


class _SoapFault(Exception):
    def __init__(self, message: str, log_id: str | None = None) -> None:
        super().__init__(message)
        self.message, self.log_id = message, log_id


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _child(el: ET.Element | None, *path: str) -> ET.Element | None:
    for tag in path:
        if el is None:
            return None
        el = el.find(_q(tag))
    return el


class SoapApi:
    """The SOAP operations of ``GpSimulator`` (state and locks live on the simulator)."""

    def _soap(self, req: Request, user: _User) -> Response:
        if req.method == "GET":
            if req.raw_query.lower() != "wsdl":
                return Response(404, b"", {"Content-Type": "text/plain"})
            location = f"{self.url}{SOAP_PATH}" if self.url else SOAP_PATH
            return Response(200, wsdl(location, self.soap_operations), {"Content-Type": "text/xml; charset=utf-8"})
        if req.method != "POST":
            return Response(405, b"", {"Content-Type": "text/plain"})
        try:
            body = ET.fromstring(req.body).find(f"{{{_ENV}}}Body")
            call = body[0] if body is not None and len(body) else None
        except ET.ParseError:
            call = None
        if call is None or not call.tag.startswith(f"{{{NS}}}"):
            return self._soap_fault("Client", "The request is not a SOAP request of the Dynamics GP service.", status=400)
        op = call.tag.split("}", 1)[1]
        if op not in self.soap_operations:
            return self._soap_fault("Client", f"Server did not recognize the value of HTTP Header SOAPAction: {op}.")
        with self._lock:
            self._counters[f"SOAP {op}"] += 1
        fault = self._take_fault(f"{SOAP_PATH}/{op}", exclude=("auth_401",))
        if fault is not None and fault.kind in ("status", "drop", "html"):
            return self._fault_response(fault)
        try:
            if fault is not None and fault.kind.startswith("soap_"):
                raise self._injected(fault.kind)
            result = self._operation(op, call, user)
        except _SoapFault as f:
            return self._soap_fault("Server", f.message, log_id=f.log_id)
        resp = Response(200, self._envelope(op, result), {"Content-Type": "text/xml; charset=utf-8"})
        if fault is not None and fault.kind == "delay":
            resp.delay = fault.seconds
        elif fault is not None and fault.kind == "truncated":
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
        return resp

    def _injected(self, kind: str) -> _SoapFault:
        if kind == "soap_validation":
            return self._validation("The document failed a business rule (simulated).")
        if kind == "soap_denied":
            return _SoapFault("Access denied: the user's security role does not allow this operation.")
        return _SoapFault("The system encountered an error. Contact your administrator.")

    def _validation(self, *errors: str) -> _SoapFault:
        log_id = str(uuid.uuid4())
        with self._lock:
            self._validation_log[log_id] = list(errors)
        return _SoapFault("The request failed validation. Use the LogId to find the validation errors.", log_id)

    # --- operations ------------------------------------------------------------------------------

    def _operation(self, op: str, call: ET.Element, user: _User) -> tuple[str, Any]:
        if op == "GetWSEnabledCompanyForUserList":
            with self._lock:
                return "ArrayOfCompanySummary", [
                    {"Key": {"Id": co.id}, "Name": co.name} for co in self._companies.values()
                    if co.name in user.companies]
        if op == "GetLoggedValidationResultByKey":
            log_id = (_child(call, "key", "Id").text or "") if _child(call, "key", "Id") is not None else ""
            with self._lock:
                errors = self._validation_log.get(log_id)
            if errors is None:
                raise _SoapFault("The system encountered an error. Contact your administrator.")
            return "ValidationResult", {"Key": {"Id": log_id},
                                        "Errors": [{"Id": i + 1, "Message": m} for i, m in enumerate(errors)]}
        co = self._soap_company(call, user)
        if op in _LISTS:
            table, _, summary, _, _ = _DOCS[_LISTS[op]]
            return f"ArrayOf{summary}", self._soap_list(co, table, summary, _child(call, "criteria"))
        table, _, _, document, _ = _DOCS[_BY_KEY[op]]
        return document, self._soap_get(co, table, _child(call, "key"))

    def _soap_company(self, call: ET.Element, user: _User) -> _Company:
        key = _child(call, "context", "OrganizationKey", "Id")
        try:
            company_id = int((key.text or "").strip()) if key is not None else None
        except ValueError:
            company_id = None
        with self._lock:
            co = next((c for c in self._companies.values() if c.id == company_id), None)
        if co is None:
            raise self._validation(f"Company key {company_id} is not a Dynamics GP company.")
        if co.name not in user.companies:
            raise _SoapFault(f"Access denied: the user has no security role in company {co.id}.")
        return co

    def _soap_list(self, co: _Company, table: str, summary: str, criteria: ET.Element | None) -> list[Any]:
        since = until = None
        wanted: dict[str, set[str]] = {}
        if criteria is not None:
            modified = _child(criteria, "ModifiedDate")
            for bound in () if modified is None else modified:
                name, text = bound.tag.split("}", 1)[1], (bound.text or "").strip()
                if "T" not in text:
                    raise self._validation(
                        f"ModifiedDate {name} {text!r}: both the date and time portions must be specified.")
                when = _aware(text)
                if name in ("GreaterThan", "From", "EqualValue"):
                    since = (when, name == "GreaterThan")
                if name in ("LessThan", "To"):
                    until = (when, name == "LessThan")
            for field in ("TransactionState", "Type"):
                items = _child(criteria, field, "Items")
                if items is not None:
                    wanted[field] = {(i.text or "").strip() for i in items}
        out = []
        with self._lock:
            rows = list(co.tables[table].rows())
            rows += [_bulk_row(table, co, b.first + i, b.base) for b in co.bulk[table] for i in range(b.count)]
            for row in rows:
                doc = self._soap_doc(table, row)
                if self.soap_criteria == "honoured" and not _passes(doc, since, until, wanted):
                    continue
                out.append(_project(doc, summary))
        return out

    def _soap_get(self, co: _Company, table: str, key: ET.Element | None) -> dict[str, Any]:
        parts = {c.tag.split("}", 1)[1]: (c.text or "").strip() for c in (key if key is not None else [])}
        with self._lock:
            for row in co.tables[table].rows():
                doc = self._soap_doc(table, row)
                mine = {k: str(v) for k, v in doc["Key"].items()}
                if table == "gl":
                    mine = {"JournalId": mine["JournalId"], "Date": mine["Date"][:10]}
                    parts = {**parts, "Date": parts.get("Date", "")[:10]}
                if mine == parts and (table != "payables" or doc.get("Type") == "Invoice"):
                    return doc
        raise self._validation(f"No document with key {parts} exists.")

    def _soap_doc(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """A stored row in its Web Services shape: enumerations by name, workflows as a list, GL
        keyed by journal and date (the schema has no year), dates as ``soap_dates`` says."""
        doc = {k: v for k, v in row.items() if not k.startswith("_")}
        if table == "purchase_orders":
            doc["Status"] = PO_STATUS.get(int(doc["Status"]), str(doc["Status"]))
        if "WorkflowApprovalStatus" in doc or "WorkflowStatus" in doc:
            status = doc.pop("WorkflowApprovalStatus", None) or doc.pop("WorkflowStatus", None)
            if isinstance(status, int):
                status = _APPROVAL.get(status, str(status))
            doc["Workflows"] = [{"Status": status, "WorkflowName": f"{table} approval"}] if status else []
        if table == "gl":
            doc["Key"] = {"JournalId": doc["Key"]["JournalId"], "Date": doc["TransactionDate"]}
        if self.soap_dates == "naive":
            doc = _naive(doc)
        return doc

    # --- the wire --------------------------------------------------------------------------------

    def _envelope(self, op: str, result: tuple[str, Any]) -> bytes:
        kind, value = result
        env = ET.Element(f"{{{_ENV}}}Envelope")
        body = ET.SubElement(env, f"{{{_ENV}}}Body")
        wrapper = ET.SubElement(body, _q(f"{op}Response"))
        _write(wrapper, f"{op}Result", kind, value)
        return ET.tostring(env, encoding="utf-8", xml_declaration=True)

    def _soap_fault(self, code: str, message: str, *, log_id: str | None = None, status: int = 500) -> Response:
        env = ET.Element(f"{{{_ENV}}}Envelope")
        fault = ET.SubElement(ET.SubElement(env, f"{{{_ENV}}}Body"), f"{{{_ENV}}}Fault")
        ET.SubElement(fault, "faultcode").text = f"soap:{code}"
        ET.SubElement(fault, "faultstring").text = message
        if log_id:
            detail = ET.SubElement(fault, "detail")
            ET.SubElement(ET.SubElement(detail, _q("ValidationFault")), _q("LogId")).text = log_id
        with self._lock:
            self._counters["soap_faults"] += 1
        return Response(status, ET.tostring(env, encoding="utf-8", xml_declaration=True),
                        {"Content-Type": "text/xml; charset=utf-8"})


def _write(parent: ET.Element, name: str, kind: Any, value: Any) -> None:
    if value is None:
        return
    el = ET.SubElement(parent, _q(name))
    if isinstance(kind, list) or (isinstance(kind, str) and kind.startswith("ArrayOf")):
        item = kind[0] if isinstance(kind, list) else kind[len("ArrayOf"):]
        for v in value or []:
            _write(el, item, item if item in TYPES else "string", v)
    elif kind in TYPES:
        for field, sub in TYPES[kind]:
            if isinstance(value, Mapping) and field in value:
                _write(el, field, sub, value[field])
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif isinstance(value, Decimal):
        el.text = f"{value:f}"
    else:
        el.text = str(value)


def _project(doc: Mapping[str, Any], summary: str) -> dict[str, Any]:
    return {f: doc[f] for f, _ in TYPES[summary] if f in doc}


def _passes(doc: Mapping[str, Any], since: tuple[datetime, bool] | None, until: tuple[datetime, bool] | None,
            wanted: Mapping[str, set[str]]) -> bool:
    try:
        stamp = _aware(doc["ModifiedDate"])
    except (TypeError, ValueError):
        return True  # a stamp the database could not hold: let the client judge it
    if since is not None and (stamp < since[0] or (since[1] and stamp == since[0])):
        return False
    if until is not None and (stamp > until[0] or (until[1] and stamp == until[0])):
        return False
    return all(str(doc.get(field)) in values for field, values in wanted.items())


def _naive(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _naive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive(v) for v in value]
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        return value[:-1]
    return value
