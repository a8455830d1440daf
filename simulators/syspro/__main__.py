"""``python -m simulators.syspro``: serve the SYSPRO simulator on loopback."""

from simulators.syspro.serve import main

main()
