"""Every error the project raises, grouped by what the caller does next.

    ErpSlackError
    ├── ConfigError          fix the configuration (carries the field path)
    ├── SourceError
    │   ├── SourceUnavailable    try again later (network, 5xx, timeouts, malformed replies)
    │   │   ├── SourceRefused        the ERP answered but refuses this request as it is (an
    │   │   │                        ERROR reply, a 4xx, a paging loop): not retried
    │   │   └── SourceUnreachable    no connection at all: every other read would fail the same way
    │   │       └── SourceCertificateUntrusted  the server's TLS certificate is not trusted
    │   ├── SourceAuthFailed     skip this cycle, audit it, alert (wrong password, no access)
    │   ├── SourceAccessDenied   one resource refused (403 on GL): fail that entity, others flow
    │   ├── EntityNotOffered     the server has no such resource (404 on an optional one): skip
    │   │                        it and keep it in its first-run state
    │   └── SourceSessionExpired the session token is no longer valid: log on again once
    ├── BadRecord            quarantine this row, keep going (carries entity, key, reason)
    ├── DeliveryFailed       records could not be delivered this run: the run fails, ops is told
    └── SlackError
        ├── SlackUnavailable     nothing reached Slack (connection refused): back off, resend
        ├── SlackRateLimited     wait ``retry_after`` seconds, then send the same batch again
        ├── SlackRejected        Slack said no (carries Slack's error code)
        └── DeliveryAmbiguous    may have been posted: reconcile before sending again

Whether a source error is worth retrying is a property of its type (``retriable``), so every
client and the Prefect task decide it the same way.

Facts live in attributes, never only in message text. Messages are built from sanitised
URLs: a query string with a password never reaches an exception.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ErpSlackError",
    "ConfigError",
    "SourceError",
    "SourceUnavailable",
    "SourceUnreachable",
    "SourceRefused",
    "SourceCertificateUntrusted",
    "SourceAuthFailed",
    "SourceSessionExpired",
    "SourceAccessDenied",
    "EntityNotOffered",
    "BadRecord",
    "DeliveryFailed",
    "SlackError",
    "SlackUnavailable",
    "SlackRateLimited",
    "SlackRejected",
    "DeliveryAmbiguous",
]


class ErpSlackError(Exception):
    """Root of every error raised by erp-slack-flows."""


class ConfigError(ErpSlackError):
    """The configuration is wrong; ``path`` names the field (``slack.channels.ap``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class SourceError(ErpSlackError):
    """Something went wrong talking to an ERP.

    ``advice`` says what a person should do about it (shown by the CLI and in ops alerts); each
    subclass has a default, and a client may give a more precise one.
    """

    advice = "See the run's log for details."

    def __init__(self, message: str, *, source: str = "", url: str = "", status: int | None = None,
                 advice: str | None = None) -> None:
        self.source = source
        self.url = url  # always sanitised by the client before it gets here
        self.status = status
        if advice is not None:
            self.advice = advice
        super().__init__(message)


class SourceUnavailable(SourceError):
    """The ERP did not answer usefully this time; a later attempt may work.

    ``retriable`` (per type) says whether the same request is worth sending again soon;
    ``retry_after`` is the wait the server asked for, if it named one.
    """

    advice = "Check that the ERP's web service is running and reachable from the worker."
    retriable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class SourceRefused(SourceUnavailable):
    """The ERP answered, but refuses this request as it was sent (an ``ERROR`` reply, a 4xx, a
    reply we cannot page past): sending it again will not help until something changes."""

    retriable: ClassVar[bool] = False


class SourceUnreachable(SourceUnavailable):
    """No connection could be made (refused, no route, DNS, TLS handshake): the run stops reading
    instead of trying every other entity against a server that is not there."""

    advice = ("Check base_url, that the ERP's web service runs, the firewall between the worker and it, "
              "and the TLS CA bundle (verify).")


class SourceCertificateUntrusted(SourceUnreachable):
    """The server's TLS certificate is not trusted: no retry helps until the CA bundle is set."""

    retriable: ClassVar[bool] = False
    advice = "Set the connection's CA bundle (verify = path to the PEM of the CA that issued the certificate)."


class SourceAuthFailed(SourceError):
    """The ERP refused our credentials or access; retrying will not help until they change."""

    advice = "Check the user name and password in the credentials block, then wait for the next run."


class SourceAccessDenied(SourceError):
    """The ERP accepted our credentials but refuses one resource (GP: a security task missing).

    Only the entity reading ``resource`` fails; every other entity of the run still flows.
    """

    advice = "Grant the integration account read access to this resource in the ERP's security setup."

    def __init__(self, message: str, *, resource: str = "", **kwargs: object) -> None:
        self.resource = resource
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class EntityNotOffered(SourceError):
    """The ERP does not offer this (optional) resource at all (HTTP 404 on GP's GL).

    Not a failure: the entity is skipped and stays in its first-run state, so that when the
    resource appears later its history is treated like any first run (baseline), not as news.
    """

    advice = "Nothing to do unless you expected this resource; the entity is skipped."


class SourceSessionExpired(SourceError):
    """The ERP session token is invalid or was evicted by another logon."""


class BadRecord(ErpSlackError):
    """One ERP row cannot be used; it is quarantined with this reason."""

    def __init__(self, entity: str, key: str | None, reason: str) -> None:
        self.entity = entity
        self.key = key
        self.reason = reason
        super().__init__(f"{entity} {key or '(no key)'}: {reason}")


class DeliveryFailed(ErpSlackError):
    """A run ended with records that could not be delivered (failed or dead-lettered, or Slack
    refused the token): the run must not look green. ``advice`` says what to do."""

    def __init__(self, message: str, *, advice: str) -> None:
        self.advice = advice
        super().__init__(message)


class SlackError(ErpSlackError):
    """Something went wrong talking to Slack."""


class SlackUnavailable(SlackError):
    """The request never reached Slack (refused, DNS): resending cannot duplicate."""

    def __init__(self, reason: str, *, method: str = "chat.postMessage") -> None:
        self.reason = reason
        self.method = method
        super().__init__(f"{method} not sent: {reason}")


class SlackRateLimited(SlackError):
    """Slack answered 429; wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float, *, method: str = "chat.postMessage") -> None:
        self.retry_after = retry_after
        self.method = method
        super().__init__(f"{method} rate limited; retry after {retry_after:g}s")


class SlackRejected(SlackError):
    """Slack refused the call with ``ok: false``; ``code`` is Slack's error code."""

    def __init__(self, code: str, *, method: str = "chat.postMessage", status: int = 200) -> None:
        self.code = code
        self.method = method
        self.status = status
        super().__init__(f"{method} failed: {code}")


class DeliveryAmbiguous(SlackError):
    """The post may have reached Slack (timeout or 5xx after sending): reconcile first."""

    def __init__(self, reason: str, *, method: str = "chat.postMessage") -> None:
        self.reason = reason
        self.method = method
        super().__init__(f"{method} outcome unknown: {reason}")


class CompaniesFailed(ErpSlackError):
    """Some companies of a source failed in a run that polled several (the others ran)."""

    def __init__(self, failures: "dict[str, Exception]") -> None:
        self.failures = dict(failures)
        super().__init__("; ".join(f"{company}: {exc}" for company, exc in self.failures.items()))
        advices = {getattr(exc, "advice", "") for exc in self.failures.values()} - {""}
        self.advice = " ".join(sorted(advices))
