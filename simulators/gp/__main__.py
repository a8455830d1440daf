"""``python -m simulators.gp``: serve the Dynamics GP simulator on loopback."""

from simulators.gp.serve import main

main()
