"""A loopback simulator of SYSPRO's two HTTP APIs, for tests, the demo and benchmarks.

It serves, from one object with its state on the instance (``SysproSimulator``):

* **e.net Solutions REST** under ``/SYSPROWCFService/Rest`` (``Logon``, ``Logoff``,
  ``GetVersion``, ``GetLogonProfile``, ``Query/Query`` with the ``COMFND`` business object), with
  SYSPRO's habits: every application error is an HTTP 200 body starting ``ERROR:``, one session
  per operator, an idle timeout on a clock the test controls (``enet.py``, ``sessions.py``);
* **SYSPRO OData v4** under ``/SYSPRO8Odata/SYSPROOData/{CompanyId}/{Table}`` with Basic auth,
  ``$filter/$select/$orderby/$top/$skip/$count`` and the 5,000-row cap (``odata.py``);
* **test hooks** under ``/__sim/`` and the same controls as Python methods (``control.py``), and
  faults in the vocabulary every simulator shares (``simulators/_faults.py``).

Where SYSPRO's behaviour is not documented, it is a constructor switch, so tests can run every
plausible variant. The two that matter most:

* ``comfnd_timestamp=True``: COMFND can select and filter the ``TimeStamp`` rowversion, rendered
  as 16 upper-case hex digits (``timestamp_format`` picks another rendering).
* ``odata_rowversion_filter=False``: OData returns ``TimeStamp`` as ``Edm.Binary`` (base64) but
  refuses ``gt/ge/lt/le`` on it, as ASP.NET OData over Entity Framework does (LINQ defines no
  ordering operators on ``byte[]``). ``eq``/``ne`` work.

Data (``seed.py``): company ``EDU1``, a small bicycle and bearing distributor, every row with a
``TimeStamp`` taken from one global rowversion counter that every insert and update bumps.
``bulk_generate`` adds millions of *virtual* rows computed from their index, so a benchmark never
holds more than one page of them in memory. Tables and the filter compiler are in ``tables.py``.

Run it alone with ``python -m simulators.syspro --port 0``. It imports nothing from the project's
core (the import-linter contract in pyproject.toml).
"""

from simulators.syspro.enet import ENET_PREFIX
from simulators.syspro.odata import ODATA_PREFIX
from simulators.syspro.serve import main
from simulators.syspro.sessions import INVALID_SESSION
from simulators.syspro.simulator import FAULTS, SysproSimulator
from simulators.syspro.tables import TIMESTAMP_FORMATS

__all__ = ["SysproSimulator", "ENET_PREFIX", "ODATA_PREFIX", "INVALID_SESSION", "TIMESTAMP_FORMATS", "FAULTS", "main"]
