"""Prefect flows: one per source, the shared pipeline body, and the connection check."""
