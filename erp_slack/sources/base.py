"""What every source client offers the pipeline, and the audit hook it reports through.

A client turns one ERP's HTTP API into pages of raw rows. It pushes the cursor filter down to
the server where the API allows it, but the pipeline filters again, so a server that ignores
filters (Dynamics GP) still works. Clients never read or write watermarks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Protocol

from erp_slack.model import CursorValue, Entity, Page

__all__ = ["AuditHook", "SourceClient", "no_audit"]

# (event kind, details). Kinds used by clients: logon, relogon, logoff, auth_failed, retry.
# Details must never hold a secret; URLs in them are sanitised.
AuditHook = Callable[[str, Mapping[str, Any]], None]


def no_audit(kind: str, details: Mapping[str, Any]) -> None:
    """The audit hook used when nobody listens."""


class SourceClient(Protocol):
    """One ERP company as the pipeline sees it."""

    source: str
    company: str

    def pages(
        self,
        entity: Entity,
        *,
        since: CursorValue | None,
        until: CursorValue | None = None,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Rows of ``entity`` with cursor >= ``since`` (closed) and < ``until``, page by page.

        ``since=None`` reads from the beginning; ``limit`` stops after that many rows (the
        connection check reads one).
        """
        ...

    def close(self) -> None:
        """Release the session (SYSPRO Logoff); safe to call twice."""
        ...

    def __enter__(self) -> "SourceClient": ...

    def __exit__(self, *exc: object) -> None: ...
