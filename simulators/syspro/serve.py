"""``python -m simulators.syspro --port 0``: serve on loopback and print how to reach it.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from simulators._http import serve_on_loopback
from simulators.syspro.enet import ENET_PREFIX
from simulators.syspro.odata import ODATA_PREFIX
from simulators.syspro.simulator import SysproSimulator


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m simulators.syspro --port 0``: serve on loopback and print how to reach it."""
    parser = argparse.ArgumentParser(description="SYSPRO e.net REST + OData simulator (loopback)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--idle-timeout", type=float, default=1200.0, help="session idle timeout (s)")
    parser.add_argument("--next-link", action="store_true", help="emit @odata.nextLink at the cap")
    parser.add_argument("--bulk-invoices", type=int, default=0, help="add N virtual ApInvoice rows")
    args = parser.parse_args(argv)
    sim = SysproSimulator(idle_timeout_seconds=args.idle_timeout, odata_next_link=args.next_link)
    if args.bulk_invoices:
        sim.bulk_generate("ApInvoice", args.bulk_invoices)
    with serve_on_loopback(sim, port=args.port, host=args.host) as served:
        print(f"SYSPRO simulator on {served.url}", flush=True)
        print(f"  e.net REST : {served.url}{ENET_PREFIX}", flush=True)
        print(f"  OData      : {served.url}{ODATA_PREFIX}/EDU1/ApInvoice", flush=True)
        print(f"  controls   : {served.url}/__sim/", flush=True)
        for code, op in sim.operators.items():
            print(f"  operator {code}: password {op.get('password')!r}, OData password "
                  f"{op.get('odata_password')!r}, companies {op.get('companies')}", flush=True)
        for code, comp in sim.companies.items():
            print(f"  company {code}: password {comp.get('password')!r}", flush=True)
        try:
            served.thread.join()
        except KeyboardInterrupt:
            pass
