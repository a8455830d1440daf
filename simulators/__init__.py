"""Loopback simulators of SYSPRO, Dynamics GP and Slack, for tests, the demo and benchmarks."""
