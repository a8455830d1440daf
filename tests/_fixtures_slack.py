"""Pytest fixtures serving the slack simulator on loopback."""
