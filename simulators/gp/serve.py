"""``python -m simulators.gp --port 0 [--tls]``: serve on loopback and print how to reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from typing import Sequence
from urllib.parse import quote

from simulators.gp.simulator import GpSimulator


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulator in the foreground: ``python -m simulators.gp --port 0 [--tls]``."""
    parser = argparse.ArgumentParser(prog="python -m simulators.gp", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a freshly made trustme CA")
    parser.add_argument("--page-size", type=int, default=None, help="rows per list page (default: unpaged)")
    parser.add_argument("--envelope", choices=("payload", "bare"), default="payload")
    parser.add_argument("--list-shape", choices=("array", "object"), default="array")
    parser.add_argument("--no-gl", action="store_true", help="answer 404 for the GL resource")
    args = parser.parse_args(argv)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C, so the temporary files are removed

    signal.signal(signal.SIGTERM, _stop)
    sim = GpSimulator(
        page_size=args.page_size, envelope=args.envelope, list_shape=args.list_shape, expose_gl=not args.no_gl
    )
    with sim, sim.serve(tls=args.tls, port=args.port) as served:
        print(f"GP SBA simulator: {sim.service_url}", flush=True)
        print(f"  tenant:   {sim.tenant}", flush=True)
        print(f"  company:  {sim.company} (URL: Companies({quote(sim.company, safe='')}))", flush=True)
        print(f"  user:     {sim.username}", flush=True)
        print(f"  password: {sim.password}", flush=True)
        if sim.ca_path:
            print(f"  CA:       {sim.ca_path}  (pass as verify=)", flush=True)
        print(f"  control:  {served.url}/__sim/<method>  (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            served.thread.join()
