"""A Dynamics GP Service Based Architecture (SBA) REST simulator for tests, the demo and benchmarks.

``GpSimulator`` is a plain app (``handle(request) -> Response``) with every piece of state on the
instance, served on loopback by ``simulators._http.serve_on_loopback`` (HTTP/1.1 keep-alive, so an
NTLM handshake can span one connection). It follows the vendor documentation:

* URL shape ``/GPService/Tenants(T)/Companies(C)/<Series>/<Resource>[(<key>[;<key2>])]`` with the
  company name percent-encoded. Resources: ``Purchasing/Vendors``,
  ``Purchasing/Payables/Transactions``, ``Purchasing/Transactions`` (purchase orders),
  ``Purchasing/Receipts`` (simulator convention, not in the documented catalog) and
  ``Financials/GeneralLedger/Transactions`` (simulator extension: GL is not in the SBA catalog, so
  it can be switched off to answer 404 like a site that does not expose it).
* Real NTLM/Negotiate authentication with pyspnego as the acceptor: the first
  401 carries ``WWW-Authenticate: Negotiate`` and ``WWW-Authenticate: NTLM``, the second leg the
  challenge, the third leg success or a final 401 with fresh challenge headers. The context lives
  in the per-connection ``Request.conn`` dict; once a connection is authenticated further requests
  on it need no header (HTTP.sys connection-based NTLM), unless ``reauth_per_request`` is set.
  Optional channel binding (Extended Protection) over TLS with ``require_cbt``.
* Authorization as GP does it: Windows principal -> GP user -> company access;
  an unmapped principal or a company without access answers 403.
* The response envelope and list shape are unknown for real SBA, so both are switchable:
  ``envelope`` ``"payload"`` (``{"Payload": ...}``) or ``"bare"``; ``list_shape`` ``"array"`` or
  ``"object"`` (``{"Items": [...], "Count": n}``). Optional paging (``page_size``) gives a next link:
  ``Links: [{"Rel": "next", "Href": ...}]`` beside a payload array, ``NextLink`` inside an object,
  and an HTTP ``Link: <...>; rel="next"`` header when the body is a bare array.
* Query parameters other than the simulator's own ``$skiptoken`` are IGNORED: nothing shows that
  real SBA supports filtering, so a client must filter on ``ModifiedDate`` itself.
* Every record carries a UTC ``ModifiedDate`` stamped on change (strictly increasing). Receipts
  only carry a day-granular ``ModifiedDate`` (``YYYY-MM-DDT00:00:00``, no offset) because POP
  receipt tables have no DEX_ROW_TS. A GL entry's stamp is the newest of its
  lines.
* Seed data styled on the GP sample company "Fabrikam, Inc.".
* Control calls as Python methods and, for other processes, ``POST /__sim/<method>`` with a JSON
  object of keyword arguments (``GET /__sim/counters``, ``GET /__sim/requests``). Faults in the
  vocabulary every simulator shares (``simulators/_faults.py``: an HTTP status such as 503, 500
  or 403, a dropped connection, a delay, an HTML page with 200, truncated JSON) plus ``auth_401``
  (a final 401 after the handshake), and request counters.
* ``generate`` adds N synthetic rows that are produced on demand page by page, so a million rows
  can be served with paging without ever being held in memory.

Run alone with ``python -m simulators.gp --port 0 [--tls]``.

Where things are: ``data.py`` (resources, documents, seed), ``auth.py`` (users, NTLM),
``api.py`` (routing, envelopes, paging, errors), ``control.py`` (business events, ``/__sim/``),
``simulator.py`` (state, clock, faults, serving), ``serve.py`` (the command line).

This package imports nothing from the project core (``erp_slack``), flows, tasks or blocks.
"""

from simulators.gp.auth import DEFAULT_PASSWORD, DEFAULT_USER
from simulators.gp.data import DEFAULT_COMPANY, DEFAULT_TENANT, MAX_UNPAGED_ROWS, PO_STATUS, RESOURCES
from simulators.gp.serve import main
from simulators.gp.simulator import FAULTS, GpSimulator

__all__ = [
    "GpSimulator", "DEFAULT_TENANT", "DEFAULT_COMPANY", "DEFAULT_USER", "DEFAULT_PASSWORD", "PO_STATUS", "RESOURCES",
    "MAX_UNPAGED_ROWS", "FAULTS", "main",
]
