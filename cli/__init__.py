"""The erp-slack command line: demo, config, run, check, up, report."""
