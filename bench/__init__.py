"""Benchmarks of erp-slack-flows: each module runs with ``python -m bench.<name> [--quick]``."""
