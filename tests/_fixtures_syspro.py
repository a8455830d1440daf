"""Pytest fixtures serving the syspro simulator on loopback."""
