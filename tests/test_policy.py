"""The send policy as a table: outcome + circumstances → decision."""

from __future__ import annotations

from datetime import timedelta

import pytest

from erp_slack.slack import policy as P

POLICY = P.SendPolicy(max_attempts=3, give_up_after=timedelta(hours=2))
YOUNG = timedelta(minutes=1)
OLD = timedelta(hours=3)


@pytest.mark.parametrize(
    "outcome, kw, expected",
    [
        (P.Outcome.RATE_LIMITED, dict(retry_after=7), P.RetryIn(7, "rate_limited")),
        (P.Outcome.RATE_LIMITED, dict(retry_after=0), P.RetryIn(1.0, "rate_limited")),
        (P.Outcome.RATE_LIMITED, dict(retry_after=7, attempt=50), P.RetryIn(7, "rate_limited")),
        (P.Outcome.RATE_LIMITED, dict(retry_after=900), P.Defer(900, "rate_limited")),
        (P.Outcome.RATE_LIMITED, dict(retry_after=3, age=OLD), P.RetryIn(3, "rate_limited")),
        (P.Outcome.QUOTA, dict(code="message_limit_exceeded", age=OLD), P.Defer(300.0, "message_limit_exceeded")),
        (P.Outcome.NOT_SENT, dict(attempt=1), P.RetryIn(1.0, "not_sent")),
        (P.Outcome.NOT_SENT, dict(attempt=2), P.RetryIn(2.0, "not_sent")),
        (P.Outcome.NOT_SENT, dict(attempt=3), P.Defer(300.0, "not_sent after 3 attempts")),
        (P.Outcome.NOT_SENT, dict(attempt=1, age=OLD), P.DeadLetter("gave up after 3:00:00 (not_sent)")),
        (P.Outcome.MAYBE_SENT, dict(code="HTTP 500"), P.Reconcile("HTTP 500")),
        (P.Outcome.MAYBE_SENT, dict(code="HTTP 500", age=OLD), P.Reconcile("HTTP 500")),
        (P.Outcome.NOT_IN_CHANNEL, dict(code="not_in_channel"), P.Join()),
        (P.Outcome.NOT_IN_CHANNEL, dict(code="not_in_channel", joined=True), P.Fail("not_in_channel")),
        (P.Outcome.BAD_PAYLOAD, dict(code="invalid_blocks", batch_size=5), P.Split("invalid_blocks")),
        (P.Outcome.BAD_PAYLOAD, dict(code="invalid_blocks"), P.Simplify("invalid_blocks")),
        (P.Outcome.BAD_PAYLOAD, dict(code="invalid_blocks", simplified=True), P.DeadLetter("invalid_blocks")),
        (P.Outcome.DESTINATION, dict(code="channel_not_found"), P.Fail("channel_not_found")),
        (P.Outcome.DESTINATION, dict(code="is_archived"), P.Fail("is_archived")),
        (P.Outcome.AUTH, dict(code="token_revoked"), P.Halt("token_revoked")),
        (P.Outcome.AUTH, dict(code="invalid_auth", age=OLD), P.Halt("invalid_auth")),
        (P.Outcome.QUOTA, dict(code="message_limit_exceeded"), P.Defer(300.0, "message_limit_exceeded")),
    ],
)
def test_decisions(outcome, kw, expected):
    kw = {"attempt": 1, "age": YOUNG, **kw}
    assert POLICY.decide(outcome, **kw) == expected


@pytest.mark.parametrize(
    "code, outcome",
    [
        ("ratelimited", P.Outcome.RATE_LIMITED),
        ("rate_limited", P.Outcome.RATE_LIMITED),
        ("internal_error", P.Outcome.MAYBE_SENT),
        ("not_in_channel", P.Outcome.NOT_IN_CHANNEL),
        ("msg_blocks_too_long", P.Outcome.BAD_PAYLOAD),
        ("channel_not_found", P.Outcome.DESTINATION),
        ("token_revoked", P.Outcome.AUTH),
        ("something_new_from_slack", P.Outcome.BAD_PAYLOAD),
    ],
)
def test_codes(code, outcome):
    assert P.classify_code(code) is outcome


def test_backoff_grows_caps_and_jitters_within_bounds():
    b = P.Backoff(initial=1, cap=10, jitter=0.5)
    assert [b.delay(a) for a in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 10, 10]
    assert b.delay(3, rand=0.0) == pytest.approx(3.0) and b.delay(3, rand=0.999) == pytest.approx(4.998)
