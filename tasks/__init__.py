"""Thin Prefect tasks: retries, timeouts and caching in the decorator, one core call in the body."""

from tasks.pipeline import deliver, extract_entity

__all__ = ["deliver", "extract_entity"]
