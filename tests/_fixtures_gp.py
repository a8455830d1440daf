"""Pytest fixtures serving the gp simulator on loopback."""
