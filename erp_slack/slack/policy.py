"""The send policy: a frozen value and one pure function from "what happened" to "what next".

It never sleeps and never calls Slack; the sender carries out the decision. Outcomes are told
apart by *when* a failure happened:

    not sent       (connection refused)            → back off and resend
    rate limited   (429)                           → wait the time Slack gave, resend the same batch
    maybe sent     (timeout, 5xx, internal_error)  → reconcile with channel history first
    not in channel                                 → join once, then resend
    bad payload    (invalid_blocks, …)             → split a digest, else simplify, else dead letter
    destination    (channel_not_found, archived)   → failed: an operator must fix the route
    auth           (invalid_auth, token_revoked)   → halt every lane; rows stay pending
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

__all__ = [
    "Outcome",
    "Backoff",
    "SendPolicy",
    "RetryIn",
    "Reconcile",
    "Join",
    "Split",
    "Simplify",
    "Defer",
    "Fail",
    "DeadLetter",
    "Halt",
    "Decision",
    "classify_code",
]


class Outcome(Enum):
    NOT_SENT = "not_sent"
    RATE_LIMITED = "rate_limited"
    MAYBE_SENT = "maybe_sent"
    NOT_IN_CHANNEL = "not_in_channel"
    BAD_PAYLOAD = "bad_payload"
    DESTINATION = "destination"
    AUTH = "auth"
    QUOTA = "quota"


_CODES: dict[str, Outcome] = {
    **{c: Outcome.RATE_LIMITED for c in ("ratelimited", "rate_limited")},
    **{
        c: Outcome.MAYBE_SENT
        for c in ("internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org",
                  "org_login_required")
    },
    "not_in_channel": Outcome.NOT_IN_CHANNEL,
    **{
        c: Outcome.BAD_PAYLOAD
        for c in ("invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long", "msg_too_long",
                  "too_many_attachments", "attachment_payload_limit_exceeded", "invalid_metadata_format",
                  "invalid_metadata_schema", "metadata_too_large", "markdown_text_conflict", "no_text",
                  "invalid_arguments", "invalid_arg_name", "invalid_array_arg", "invalid_form_data",
                  "invalid_post_type", "missing_post_type", "invalid_charset")
    },
    **{
        c: Outcome.DESTINATION
        for c in ("channel_not_found", "is_archived", "restricted_action", "restricted_action_read_only_channel",
                  "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
                  "ekm_access_denied", "messages_tab_disabled", "cannot_reply_to_message", "team_not_found",
                  "method_not_supported_for_channel_type")
    },
    **{
        c: Outcome.AUTH
        for c in ("not_authed", "invalid_auth", "token_revoked", "token_expired", "account_inactive",
                  "missing_scope", "no_permission", "not_allowed_token_type", "access_denied",
                  "app_access_restricted")
    },
    "message_limit_exceeded": Outcome.QUOTA,
}


def classify_code(code: str) -> Outcome:
    """Slack's ``error`` code → outcome. An unknown code counts as a payload problem: resending
    the same bytes would fail the same way, and it ends up visible as a dead letter."""
    return _CODES.get(code, Outcome.BAD_PAYLOAD)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with proportional jitter, capped."""

    initial: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds before attempt ``attempt + 1``; ``rand`` in [0, 1) is the jitter draw."""
        base = min(self.cap, self.initial * (2 ** max(0, attempt - 1)))
        return max(0.0, base * (1 - self.jitter / 2 + self.jitter * rand))


@dataclass(frozen=True)
class RetryIn:
    seconds: float
    reason: str


@dataclass(frozen=True)
class Reconcile:
    reason: str


@dataclass(frozen=True)
class Join:
    pass


@dataclass(frozen=True)
class Split:
    reason: str


@dataclass(frozen=True)
class Simplify:
    reason: str


@dataclass(frozen=True)
class Defer:
    """Give the rows back for a later run (Slack keeps failing, but it is not our fault)."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class Fail:
    """Stop this lane; rows become ``failed`` until an operator fixes the route and requeues."""

    reason: str


@dataclass(frozen=True)
class DeadLetter:
    reason: str


@dataclass(frozen=True)
class Halt:
    """Stop every lane; rows stay ``pending`` (the token is bad for all of them)."""

    reason: str


Decision = RetryIn | Reconcile | Join | Split | Simplify | Defer | Fail | DeadLetter | Halt


@dataclass(frozen=True)
class SendPolicy:
    """Limits on retrying one batch.

    Attributes:
        max_attempts: Posts of one batch within one drain before it is deferred to a later run.
        give_up_after: Time since a record's first attempt after which, if Slack still cannot be
            reached, it is dead-lettered (waiting out 429s never counts).
        backoff: Waits between attempts that failed before reaching Slack.
        defer_for: How long deferred rows wait before a later drain picks them up.
        max_retry_after: A Retry-After above this defers the batch instead of holding the lane.
    """

    max_attempts: int = 6
    give_up_after: timedelta = timedelta(hours=2)
    backoff: Backoff = Backoff()
    defer_for: timedelta = timedelta(minutes=5)
    max_retry_after: float = 300.0

    def decide(
        self,
        outcome: Outcome,
        *,
        attempt: int,
        age: timedelta,
        code: str = "",
        retry_after: float | None = None,
        batch_size: int = 1,
        simplified: bool = False,
        joined: bool = False,
        rand: float = 0.5,
    ) -> Decision:
        """What to do after ``attempt`` posts of a batch whose oldest record is ``age`` old."""
        why = code or outcome.value
        if outcome is Outcome.AUTH:
            return Halt(why)
        if outcome is Outcome.DESTINATION:
            return Fail(why)
        if outcome is Outcome.NOT_IN_CHANNEL:
            return Fail(why) if joined else Join()
        if outcome is Outcome.BAD_PAYLOAD:
            if batch_size > 1:
                return Split(why)
            return DeadLetter(why) if simplified else Simplify(why)
        if outcome is Outcome.MAYBE_SENT:
            return Reconcile(why)
        if outcome is Outcome.RATE_LIMITED:
            # Waiting out a 429 is Slack's instruction, not a failure: it does not use up attempts.
            wait = max(1.0, retry_after if retry_after is not None else 1.0)
            if wait > self.max_retry_after:
                return Defer(wait, why)
            return RetryIn(wait, why)
        if outcome is Outcome.QUOTA:
            return Defer(self.defer_for.total_seconds(), why)
        # Only failures to reach Slack at all count against a record's age: waiting when Slack
        # asks us to (429, quota) never dead-letters anything.
        if age > self.give_up_after:
            return DeadLetter(f"gave up after {age} ({why})")
        if attempt >= self.max_attempts:
            return Defer(self.defer_for.total_seconds(), f"{why} after {attempt} attempts")
        return RetryIn(self.backoff.delay(attempt, rand), why)
