"""What both ERP clients do the same way over HTTP.

* **Safe URLs.** ``safe_url`` drops user info and masks secret query values (SYSPRO e.net puts the
  operator and company passwords and the session ``UserId`` in the query string). Every URL that
  reaches an exception, a ``Page``, an audit row or a log line goes through it, and
  ``RedactUrls`` does it for the request lines httpx and urllib3 log themselves, whatever the
  server's base path.
* **Secrets in server text.** ``scrubber`` masks known secrets inside an ERP's error message.
* **TLS.** ``tls_verify`` turns the ``verify`` setting into what httpx takes.
* **One retry policy** for idempotent reads, in the vocabulary of stamina and tenacity: capped by
  attempts *and* by time, exponential waits with jitter, a server's ``Retry-After`` honoured up to
  ``wait_max``. Whether an error is worth retrying is a property of its type
  (``SourceUnavailable.retriable``), declared in ``erp_slack.errors``.
* **One guard for server-driven paging**: a next link to another host is never followed
  (credentials go with every request) and a link already read ends the read loudly.
"""

from __future__ import annotations

import logging
import random
import ssl
from dataclasses import dataclass
from os import PathLike
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from erp_slack.errors import SourceRefused, SourceUnavailable

__all__ = ["safe_url", "scrubber", "tls_verify", "RetryPolicy", "retrying", "LinkGuard", "Verify"]

_T = TypeVar("_T")
Verify = bool | str | PathLike[str] | ssl.SSLContext

# Query parameters whose values are never shown (compared case-insensitively).
_SECRET_PARAMS = frozenset({
    "operatorpassword", "companypassword", "userid", "password", "odatapassword", "token", "access_token",
})


def safe_url(url: Any) -> str:
    """The URL without user info or fragment, with secret query values masked (``***``)."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        name, sep, value = piece.partition("=")
        if unquote_plus(name).lower() in _SECRET_PARAMS and value:
            piece = f"{name}{sep}***"
        pieces.append(piece)
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pieces), ""))


class RedactUrls(logging.Filter):
    """Masks secrets in the URLs HTTP libraries log (httpx logs every request line at INFO,
    urllib3 at DEBUG) before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redacted(a) for a in record.args)
        return True


def _redacted(arg: Any) -> Any:
    text = str(arg) if type(arg).__name__ == "URL" else arg
    if isinstance(text, str) and "=" in text and ("?" in text or "://" in text):
        return safe_url(text) if "://" in text else _redact_path(text)
    return arg


def _redact_path(path: str) -> str:
    """``/a/b?x=1&Password=…`` (urllib3 logs the path and query without the host)."""
    head, sep, query = path.partition("?")
    return head + sep + safe_url("http://h/?" + query).split("?", 1)[1] if sep else path


_REDACT = RedactUrls()
for _name in ("httpx", "httpcore", "urllib3.connectionpool", "requests_ntlm"):
    logging.getLogger(_name).addFilter(_REDACT)


def scrubber(secrets: Sequence[str | None]) -> Callable[[str], str]:
    """A function that masks any of ``secrets`` (three characters or more) inside a text."""
    words = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def scrub(text: str) -> str:
        for w in words:
            text = text.replace(w, "***")
        return text

    return scrub


def tls_verify(verify: Verify) -> bool | ssl.SSLContext:
    """``True`` (system CAs), a CA bundle path (self-signed ERP servers), or an SSLContext."""
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    return ssl.create_default_context(cafile=str(verify))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long an idempotent read is retried after a transient failure.

    Attributes:
        attempts: Tries in all, the first included.
        timeout: Seconds from the first try after which no new wait starts.
        wait_initial: First wait, in seconds.
        wait_max: Longest single wait; also caps a server's ``Retry-After``.
        wait_exp_base: Growth factor between waits.
        wait_jitter: Up to this many seconds added at random to each wait (0: none), so that
            several workers do not retry in step.
    """

    attempts: int = 3
    timeout: float = 30.0
    wait_initial: float = 0.5
    wait_max: float = 5.0
    wait_exp_base: float = 2.0
    wait_jitter: float = 0.0

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        wait = self.wait_initial * self.wait_exp_base ** (attempt - 1)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if self.wait_jitter:
            wait += random.uniform(0, self.wait_jitter)
        return min(wait, self.wait_max)


def retrying(
    call: Callable[[], _T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    on_retry: Callable[[SourceUnavailable, int, float], None],
) -> _T:
    """``call()``, tried again while it raises a retriable ``SourceUnavailable``, within the
    policy's attempts and time. The last error is raised as it is, its message saying how many
    tries were made. ``on_retry(error, attempt, wait)`` runs before
    each wait (the clients audit it)."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except SourceUnavailable as error:
            if not error.retriable:
                raise
            wait = policy.wait(attempt, error.retry_after)
            if attempt >= policy.attempts or clock() - started + wait > policy.timeout:
                error.args = (f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",)
                raise
            on_retry(error, attempt, wait)
            sleep(wait)


class LinkGuard:
    """Checks the next-page links a server hands out during one read: same origin as the read's
    first URL, and never a URL the read already asked for (loop detection)."""

    def __init__(self, first_url: str, *, source: str, what: str) -> None:
        self._origin = _origin(first_url)
        self._seen = {first_url}
        self._source, self._what = source, what

    def check(self, link: str, *, current: str) -> str:
        """``link`` if it may be followed; raises ``SourceRefused`` otherwise."""
        if _origin(link) != self._origin:
            # Never send credentials to a server the configuration did not name.
            raise SourceRefused(f"{self._what} sent a next-page link to another server ({safe_url(link)})",
                                source=self._source, url=safe_url(current))
        if link in self._seen:
            raise SourceRefused(f"{self._what} paging loops: {safe_url(link)} was already read",
                                source=self._source, url=safe_url(current))
        self._seen.add(link)
        return link

    @property
    def followed(self) -> bool:
        """Whether any next link was followed."""
        return len(self._seen) > 1


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
