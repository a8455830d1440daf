"""A stateful Slack Web API simulator for tests, the demo and benchmarks.

``SlackSimulator`` is a plain app (``handle(request) -> Response``) with all its state on the
instance, served on loopback by ``simulators._http.serve_on_loopback``. It follows Slack's Web API documentation:

* routing: ``/api/<method>`` and ``/<method>``, GET or POST; query string first, then a JSON,
  form-urlencoded or empty body (whatever ``slack_sdk`` sends for each method);
* a workspace: team, bot identity, tokens, channels with membership and archiving, messages
  with threads, metadata and edit history;
* Slack's error contract: business errors are HTTP 200 ``ok:false``, rate limits are HTTP
  429 with a whole-second ``Retry-After``, injected server errors carry an HTML body;
* Block Kit and metadata validation with Slack's error codes;
* rate limits, switchable and time-scaled, see "Rate model" below;
* fault injection and recording, also reachable over HTTP under ``/__sim/``.

Rate model (every number is configurable; ``rate_limits=False`` switches enforcement off):

* ``chat.postMessage`` per channel: a token bucket refilling ``channel_rate`` tokens per simulated
  second with capacity ``channel_burst`` (default 2). Slack says "1 per second per channel,
  bursts allowed" but publishes no burst size; 2 is the small burst the drainer is built for,
  1 (strictly one message per second) and 3 are the variants tests also run against.
* ``chat.postMessage`` per workspace: a sliding window of at most ``workspace_per_minute``
  accepted posts in any simulated minute ("several hundred per minute").
* other methods: optional per-method sliding windows (``method_per_minute``, e.g. ``SLACK_TIERS``);
  off by default so reads in unrelated tests never see 429s.
* ``time_scale`` = s makes simulated time run s times faster than the real monotonic clock, so a
  test at s=20 gets 20 messages/second per channel. A rejected call consumes no budget.
* A 429 carries ``Retry-After`` in whole *simulated* seconds (at least 1; ``slack_sdk`` crashes on
  fractions) and ``X-Sim-Retry-After-Ms``, the precise *real* wait in milliseconds (rounded up).
  ``Retry-After / time_scale`` is always a safe real wait too.
* Every post that reaches the limiter is logged as ``PostAttempt(t, channel, accepted, scope)`` with
  the limiter's own monotonic ``t`` (also when limits are off), and ``rate_violations()`` checks the
  accepted posts against the bucket and the window, so tests can prove a client's pacing.

Run alone with ``python -m simulators.slack --port 0 --time-scale 1``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import http
import json
import math
import re
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl

from simulators._faults import FaultQueue
from simulators._http import Request, Response, json_response, run_forever

__all__ = [
    "SlackSimulator",
    "Call",
    "PostAttempt",
    "DEFAULT_TOKEN",
    "ERP_CHANNELS",
    "SLACK_TIERS",
    "validate_blocks",
    "block_text_length",
    "main",
]

DEFAULT_TOKEN = "xoxb-sim-token"
ERP_CHANNELS = ("ap-invoices", "purchasing", "warehouse", "gl-postings", "finance-alerts", "ap-large", "sales")
# Tier rates per minute (Slack's published tiers); pass as ``method_per_minute=SLACK_TIERS`` to enforce them.
SLACK_TIERS: Mapping[str, int] = {
    "chat.update": 50,
    "chat.getPermalink": 100,
    "conversations.history": 50,
    "conversations.replies": 50,
    "conversations.join": 50,
    "conversations.list": 20,
    "conversations.info": 100,
    "auth.test": 100,
}

_EPS = 1e-6  # tokens; rate_violations() allows the same slack
_MAX_TEXT = 40_000  # truncated above this on post, msg_too_long on update
_EVENT_TYPE = re.compile(r"^[a-z0-9_]+$")
_TS = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$")
_MESSAGE_BLOCKS = {
    "actions", "context", "divider", "file", "header", "image", "input", "markdown",
    "rich_text", "section", "table", "video", "context_actions",
}  # fmt: skip


class SlackError(Exception):
    """An ``ok:false`` answer: Slack's error code plus any extra top-level fields."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class _RateLimited(Exception):
    def __init__(self, wait: float, scope: str) -> None:
        super().__init__(scope)
        self.wait, self.scope = wait, scope


@dataclass(frozen=True)
class Call:
    """One request as the simulator saw it.

    ``status`` is the HTTP status sent (0 when the connection was dropped); ``channel`` is the
    resolved channel ID when known, else the raw argument; ``args`` never contains the token.
    """

    method: str
    channel: str | None
    status: int
    error: str | None
    t: float
    verb: str = "POST"
    args: dict[str, Any] = field(default_factory=dict)
    injected: bool = False
    rate_limited: bool = False
    ts: str | None = None


@dataclass(frozen=True)
class PostAttempt:
    """A ``chat.postMessage`` that reached the rate limiter (``t`` is the limiter's monotonic clock)."""

    t: float
    channel: str
    accepted: bool
    scope: str | None = None  # "channel" or "workspace" when refused


@dataclass
class _Fault:
    method: str
    error: str | None
    status: int
    times: int
    retry_after: float | None
    channel: str | None
    stored_then_failed: bool
    seconds: float
    drop: bool


@dataclass(frozen=True)
class _Bot:
    name: str
    user_id: str
    bot_id: str


@dataclass
class _Channel:
    id: str
    name: str
    private: bool
    archived: bool
    created: int
    members: set[str] = field(default_factory=set)


@dataclass
class _Ctx:
    """Per-request scratch: what the handler learned, for the call record."""

    args: dict[str, Any]
    bot: _Bot | None
    now: float
    channel: str | None = None
    ts: str | None = None


class _Bucket:
    """Token bucket in real seconds: ``rate`` tokens/s, capacity ``burst``, starts full."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, now

    def wait(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        # The tolerance absorbs float noise, so waiting exactly the advertised time always works.
        return 0.0 if self.tokens >= 1 - _EPS else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class _Window:
    """At most ``limit`` events in any half-open window ``(t - span, t]``."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit, self.span, self.times = limit, span, deque[float]()

    def wait(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.span:
            self.times.popleft()
        return 0.0 if len(self.times) < self.limit else self.times[0] + self.span - now

    def add(self, now: float) -> None:
        self.times.append(now)


def _slack_id(prefix: str, seed: str) -> str:
    # Deterministic IDs keep the demo's output and test failures stable across runs.
    return prefix + "0" + hashlib.sha1(seed.encode()).hexdigest()[:9].upper()


def _flag(value: Any) -> bool:
    # slack_sdk sends JSON true/false, form 1/0; people type "true".
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _ts_us(value: Any, error: str) -> int:
    """A ``ts`` string as integer microseconds; ts values are compared exactly, never as floats."""
    m = _TS.match(str(value).strip())
    if not m:
        raise SlackError(error)
    return int(m.group(1)) * 1_000_000 + int((m.group(2) or "0").ljust(6, "0"))


def _format_ts(us: int) -> str:
    return "%d.%06d" % divmod(us, 1_000_000)  # "1700000000.000100", always a string


def _cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _uncursor(kind: str, cursor: str) -> str:
    try:
        got, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    except ValueError:
        raise SlackError("invalid_cursor") from None
    if got != kind or not value:
        raise SlackError("invalid_cursor")
    return value


def _limit(args: Mapping[str, Any], default: int, maximum: int) -> int:
    try:
        n = int(args.get("limit") or default)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    if n < 1:
        return default
    if n > maximum:
        raise SlackError("invalid_limit")
    return n


# ---------------------------------------------------------------------------------------------
# Block Kit validation. Messages mimic Slack's "<reason> [json-pointer:/blocks/...]".
# ---------------------------------------------------------------------------------------------


def _text_object(obj: Any, ptr: str, errs: list[str], *, maximum: int = 3000, plain_only: bool = False) -> None:
    if not isinstance(obj, dict):
        errs.append(f"must be a text object [json-pointer:{ptr}]")
        return
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        errs.append(f"must be one of {', '.join(allowed)} [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errs.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    elif len(text) > maximum:
        errs.append(f"must be less than {maximum + 1} characters [json-pointer:{ptr}/text]")


def _check_block(block: dict[str, Any], ptr: str, errs: list[str]) -> None:
    kind = block["type"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            errs.append(f"must provide either text or fields [json-pointer:{ptr}]")
        if "text" in block:
            _text_object(block["text"], f"{ptr}/text", errs)
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                errs.append(f"no more than 10 items allowed [json-pointer:{ptr}/fields]")
            else:
                for i, f in enumerate(fields):
                    _text_object(f, f"{ptr}/fields/{i}", errs, maximum=2000)
    elif kind == "header":
        _text_object(block.get("text"), f"{ptr}/text", errs, maximum=150, plain_only=True)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            errs.append(f"must provide at least 1 element [json-pointer:{ptr}/elements]")
        elif len(elements) > 10:
            errs.append(f"no more than 10 items allowed [json-pointer:{ptr}/elements]")
        else:
            for i, el in enumerate(elements):
                if not (isinstance(el, dict) and el.get("type") == "image"):
                    _text_object(el, f"{ptr}/elements/{i}", errs)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            errs.append(f"must provide 1 to 25 items [json-pointer:{ptr}/elements]")
    elif kind == "image":
        if not (block.get("image_url") or block.get("slack_file")):
            errs.append(f"missing required field: image_url [json-pointer:{ptr}]")
        alt = block.get("alt_text")
        if not isinstance(alt, str) or not 0 < len(alt) <= 2000:
            errs.append(f"must be 1 to 2000 characters [json-pointer:{ptr}/alt_text]")
    elif kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 12_000:
            errs.append(f"must be 1 to 12000 characters [json-pointer:{ptr}/text]")
    elif kind == "table":
        rows = block.get("rows")
        if not isinstance(rows, list) or not 1 <= len(rows) <= 100:
            errs.append(f"must provide 1 to 100 rows [json-pointer:{ptr}/rows]")
        else:
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) > 20:
                    errs.append(f"no more than 20 items allowed [json-pointer:{ptr}/rows/{i}]")
    elif kind == "rich_text" and not isinstance(block.get("elements"), list):
        errs.append(f"missing required field: elements [json-pointer:{ptr}]")


def validate_blocks(blocks: Any) -> list[str]:
    """Check a message's ``blocks`` against the Block Kit limits in reference

    Args:
        blocks: the decoded ``blocks`` argument.

    Returns:
        Slack-style error strings with a json-pointer each; empty when the blocks are valid.
    """
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errs: list[str] = []
    if len(blocks) > 50:
        errs.append("no more than 50 items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    markdown_total, tables = 0, 0
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errs.append(f"missing required field: type [json-pointer:{ptr}]")
            continue
        if block["type"] not in _MESSAGE_BLOCKS:
            errs.append(f"unsupported type: {block['type']} [json-pointer:{ptr}/type]")
            continue
        if "block_id" in block:
            bid = block["block_id"]
            if not isinstance(bid, str) or not 0 < len(bid) <= 255:
                errs.append(f"must be 1 to 255 characters [json-pointer:{ptr}/block_id]")
            elif bid in seen_ids:
                errs.append(f"duplicate block_id {bid!r} [json-pointer:{ptr}/block_id]")
            else:
                seen_ids.add(bid)
        if block["type"] == "markdown" and isinstance(block.get("text"), str):
            markdown_total += len(block["text"])
        tables += block["type"] == "table"
        _check_block(block, ptr, errs)
    if markdown_total > 12_000:  # counted across all markdown blocks
        errs.append("markdown blocks must be less than 12001 characters in total [json-pointer:/blocks]")
    if tables > 1:  # one table per message (third-party report)
        errs.append("only one table allowed per message [json-pointer:/blocks]")
    return errs


def block_text_length(value: Any) -> int:
    """Total length of every ``text`` string inside ``value`` (the ``msg_blocks_too_long`` measure)."""
    if isinstance(value, list):
        return sum(block_text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else block_text_length(v) for k, v in value.items())
    return 0


def _validate_metadata(meta: Any) -> None:
    ok = (
        isinstance(meta, dict)
        and isinstance(meta.get("event_type"), str)
        and _EVENT_TYPE.match(meta["event_type"]) is not None
        and isinstance(meta.get("event_payload"), dict)
    )
    if not ok:
        raise SlackError("invalid_metadata_format")


# Form bodies carry these as JSON strings; a bad string gets the field's own error code.
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "metadata": "invalid_metadata_format",
}


def _parse_args(request: Request) -> dict[str, Any]:
    """Merge the query string and the body; nested fields arrive as JSON strings in forms."""
    args: dict[str, Any] = dict(request.query)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.body.strip():
        if ctype == "application/json":
            try:
                data = json.loads(request.body)
            except ValueError:
                raise SlackError("invalid_json") from None  # code undocumented, a guess
            if not isinstance(data, dict):
                raise SlackError("invalid_json")
            data.pop("token", None)  # with a JSON body the token must be in the header
            args.update(data)
        elif ctype in ("application/x-www-form-urlencoded", ""):
            try:
                args.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
            except (UnicodeDecodeError, ValueError):
                raise SlackError("invalid_form_data") from None
        else:
            raise SlackError("invalid_post_type")
    for name, error in _JSON_FIELDS.items():
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                raise SlackError(error) from None
    return args


def _html(status: int) -> Response:
    phrase = http.HTTPStatus(status).phrase
    body = f"<!DOCTYPE html><html><head><title>{status} {phrase}</title></head><body><h1>{phrase}</h1></body></html>"
    return Response(status, body.encode(), {"Content-Type": "text/html; charset=utf-8"})


class SlackSimulator:
    """A Slack workspace behind the Web API, for one test or one demo run.

    Args:
        team: workspace display name.
        domain: workspace subdomain, used in ``auth.test`` and permalinks.
        token: the bot token that is valid from the start.
        channels: public channels the bot is a member of (default ``ERP_CHANNELS``); ``#general``,
            an archived ``#old-ap`` and a private ``#controllers`` (bot not a member) always exist.
        rate_limits: enforce the rate model; when false, posts are still logged for checking.
        channel_rate: ``chat.postMessage`` messages per simulated second per channel.
        channel_burst: token-bucket capacity per channel (whole messages, at least 1).
        workspace_per_minute: accepted ``chat.postMessage`` calls in any simulated minute.
        method_per_minute: optional per-method limits for other methods, e.g. ``SLACK_TIERS``.
        time_scale: simulated seconds per real second (20 makes every limit 20 times faster).
        max_block_text: cumulative block text above which posts fail with ``msg_blocks_too_long``.
        clock: monotonic clock for the rate model (inject a fake one to test without sleeping).
        wall: epoch clock seeding message ``ts`` values.
    """

    def __init__(
        self,
        *,
        team: str = "Acme Bearings",
        domain: str = "acme-bearings",
        token: str = DEFAULT_TOKEN,
        channels: Iterable[str] | None = None,
        rate_limits: bool = True,
        channel_rate: float = 1.0,
        channel_burst: int = 2,
        workspace_per_minute: int = 600,
        method_per_minute: Mapping[str, int] | None = None,
        time_scale: float = 1.0,
        max_block_text: int = 12_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if channel_rate <= 0 or channel_burst < 1 or workspace_per_minute < 1 or time_scale <= 0:
            raise ValueError("rates, burst and time_scale must be positive (burst at least 1)")
        self.team, self.domain, self.token = team, domain, token
        self.team_id = _slack_id("T", domain)
        self.rate_limits = rate_limits
        self.channel_rate, self.channel_burst = channel_rate, channel_burst
        self.workspace_per_minute = workspace_per_minute
        self.method_per_minute = dict(method_per_minute or {})
        self.time_scale, self.max_block_text = time_scale, max_block_text
        self._clock, self._wall = clock, wall
        self._seed_channels = [c.lstrip("#") for c in (ERP_CHANNELS if channels is None else channels)]
        self._lock = threading.RLock()
        self._last_us = 0  # survives reset() so ts values never repeat within one simulator
        self._methods: dict[str, Callable[[_Ctx], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.getPermalink": self._permalink,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.list": self._list,
            "conversations.info": self._info,
            "conversations.join": self._join,
        }
        self.reset()

    # -- seeding and control ---------------------------------------------------------------------

    def reset(self) -> None:
        """Return to the constructed workspace: seeded channels and token, nothing posted or logged."""
        with self._lock:
            self.bot = _Bot("erp-bot", _slack_id("U", self.domain + "/bot"), _slack_id("B", self.domain + "/bot"))
            self._tokens: dict[str, tuple[_Bot, str | None]] = {self.token: (self.bot, None)}
            self._channels: dict[str, _Channel] = {}
            self._messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
            self._faults: FaultQueue[_Fault] = FaultQueue()
            self._calls: list[Call] = []
            self._post_log: list[PostAttempt] = []
            self._buckets: dict[str, _Bucket] = {}
            self._workspace = _Window(self.workspace_per_minute, 60.0 / self.time_scale)
            self._method_windows = {m: _Window(n, 60.0 / self.time_scale) for m, n in self.method_per_minute.items()}
            self.add_channel("general")
            for name in self._seed_channels:
                self.add_channel(name)
            self.add_channel("old-ap", archived=True)
            self.add_channel("controllers", private=True, member=False)

    def add_channel(self, name: str, *, private: bool = False, archived: bool = False, member: bool = True) -> str:
        """Create a channel and return its ID (``C0…``); ``member`` puts the main bot in it."""
        name = name.lstrip("#")
        with self._lock:
            if any(c.name == name for c in self._channels.values()):
                raise ValueError(f"channel #{name} already exists")
            cid = _slack_id("C", name)
            while cid in self._channels:
                cid = _slack_id("C", cid)
            members = {self.bot.user_id} if member else set()
            self._channels[cid] = _Channel(cid, name, private, archived, int(self._wall()), members)
            return cid

    def add_token(self, token: str, *, bot_name: str = "other-bot", join_public: bool = True) -> None:
        """Add a second app's bot token (e.g. to provoke ``cant_update_message``)."""
        with self._lock:
            bot = _Bot(bot_name, _slack_id("U", bot_name), _slack_id("B", bot_name))
            self._tokens[token] = (bot, None)
            for ch in self._channels.values():
                if join_public and not ch.private:
                    ch.members.add(bot.user_id)

    def revoke_token(self, token: str, *, error: str = "token_revoked") -> None:
        """Make ``token`` fail with ``error`` (``token_revoked`` or ``token_expired``)."""
        with self._lock:
            bot, _ = self._tokens.get(token, (self.bot, None))
            self._tokens[token] = (bot, error)

    def archive(self, channel: str) -> None:
        """Archive a channel (name or ID): posts and joins then fail with ``is_archived``."""
        with self._lock:
            self._lookup(channel).archived = True

    def kick_bot(self, channel: str) -> None:
        """Remove the main bot from a channel: posts then fail with ``not_in_channel``."""
        with self._lock:
            self._lookup(channel).members.discard(self.bot.user_id)

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given by name (``#ap`` or ``ap``) or ID."""
        with self._lock:
            return self._lookup(channel).id

    def inject(
        self,
        method: str,
        error: str | None = None,
        *,
        status: int = 200,
        times: int = 1,
        retry_after: float | None = None,
        channel: str | None = None,
        stored_then_failed: bool = False,
        seconds: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Queue a fault for the next ``times`` calls of ``method`` (``"*"`` matches every method).

        Faults for a method are consumed in the order they were queued.

        Args:
            method: Web API method name, e.g. ``"chat.postMessage"``.
            error: the ``ok:false`` code to answer with (HTTP ``status``, 200 by default).
            status: HTTP status; 429 answers ``ratelimited``, 5xx without ``error`` an HTML page.
            times: how many matching calls the fault applies to.
            retry_after: simulated seconds for the 429 ``Retry-After`` (implies ``status=429``).
            channel: only calls addressed to this channel (name or ID) match.
            stored_then_failed: handle the call for real (the message is stored) and then answer
                HTTP 500 (or ``status`` if it is 5xx), or drop the connection with ``drop`` (
                ``after_commit``). Only a call that succeeded consumes the fault.
            seconds: real seconds to stall the answer (client timeouts); alone, it delays a normal answer.
            drop: close the connection without answering (the message is not stored unless
                ``stored_then_failed``).
        """
        if retry_after is not None and status == 200:
            status = 429
        if status == 200 and error is None and not (stored_then_failed or drop or seconds):
            raise ValueError("a fault needs an error, a status, a delay, a drop or stored_then_failed")
        with self._lock:
            target = None
            if channel is not None:
                target = self._lookup(channel).id if self._find(channel) else channel
            self._faults.add(
                _Fault(method, error, status, times, retry_after, target, stored_then_failed, seconds, drop)
            )

    def clear_faults(self) -> None:
        """Drop every fault still queued (Slack behaves from here on)."""
        with self._lock:
            self._faults = FaultQueue()

    # -- inspection ------------------------------------------------------------------------------

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Stored messages in ``ts`` order, across channels or for one channel (name or ID).

        Each is a dict with ``channel`` (ID), ``channel_name``, ``ts``, ``text``, ``blocks``,
        ``attachments``, ``metadata``, ``thread_ts``, ``user``, ``bot_id``, ``edited`` and ``edits``
        (earlier versions).
        """
        with self._lock:
            ids = [self._lookup(channel).id] if channel is not None else list(self._messages)
            out = []
            for cid in ids:
                for m in self._messages.get(cid, []):
                    view = {k: m.get(k) for k in ("ts", "text", "blocks", "attachments", "metadata", "thread_ts")}
                    view.update(channel=cid, channel_name=self._channels[cid].name, user=m["user"], bot_id=m["bot_id"])
                    view.update(edited=m.get("edited"), edits=m["_edits"])
                    out.append(copy.deepcopy(view))
            return sorted(out, key=lambda v: _ts_us(v["ts"], ""))

    @property
    def calls(self) -> list[Call]:
        """Every request in arrival order."""
        with self._lock:
            return list(self._calls)

    def call_counts(self) -> Counter[str]:
        """How many times each method was called."""
        with self._lock:
            return Counter(c.method for c in self._calls)

    @property
    def post_log(self) -> list[PostAttempt]:
        """Every ``chat.postMessage`` that reached the rate limiter, accepted or refused."""
        with self._lock:
            return list(self._post_log)

    def rate_violations(
        self, channel: str | None = None, *, rate: float | None = None, burst: int | None = None
    ) -> list[str]:
        """Where accepted posts broke the rate model; an empty list means the pacing was legal.

        Per channel, every ``n`` posts between times ``t_i`` and ``t_j`` must satisfy
        ``n <= burst + rate * time_scale * (t_j - t_i)``. Replaying a full token bucket over the
        posts checks exactly that in one pass. For the whole workspace (``channel`` None), no
        simulated minute may hold more than ``workspace_per_minute`` posts. At most one problem is
        reported per channel.

        Args:
            channel: check one channel (name or ID) instead of all of them.
            rate: simulated messages/second to check against (default ``channel_rate``).
            burst: bucket capacity to check against (default ``channel_burst``).
        """
        r = (self.channel_rate if rate is None else rate) * self.time_scale
        b = self.channel_burst if burst is None else burst
        with self._lock:
            only = self._lookup(channel).id if channel is not None else None
            accepted = [p for p in self._post_log if p.accepted]
            names = {cid: ch.name for cid, ch in self._channels.items()}
        per_channel: dict[str, list[float]] = defaultdict(list)
        for p in accepted:
            if only in (None, p.channel):
                per_channel[p.channel].append(p.t)
        problems = []
        for cid, times in per_channel.items():
            bucket = _Bucket(r, b, times[0])
            for n, t in enumerate(times, 1):
                early = bucket.wait(t)
                if early > 0:
                    at = (t - times[0]) * self.time_scale
                    problems.append(f"#{names.get(cid, cid)}: post {n} at +{at:.3f} simulated s came "
                                    f"{early * self.time_scale:.3f} s early")  # fmt: skip
                    break
                bucket.take()
        if only is None:
            span = 60.0 / self.time_scale
            times = [p.t for p in accepted]
            lo = 0
            for hi, t in enumerate(times):
                while times[lo] <= t - span:
                    lo += 1
                if hi - lo + 1 > self.workspace_per_minute:
                    problems.append(f"workspace: {hi - lo + 1} posts within one simulated minute")
                    break
        return problems

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request (the ``simulators._http.App`` protocol)."""
        if request.path.startswith("/__sim/"):
            return self._control(request)
        path = request.path
        method = path[len("/api/") :] if path.startswith("/api/") else path.lstrip("/")
        with self._lock:
            ctx = _Ctx({}, None, self._clock())
            try:
                ctx.args = _parse_args(request)
            except SlackError as exc:
                return self._record(ctx, method, request.method, json_response(self._error(exc)))
            bearer = request.headers.get("authorization", "")
            param = ctx.args.pop("token", None)  # never kept in the call record
            token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else param
            fault = self._next_fault(method, ctx.args)
            if fault is None:
                return self._record(ctx, method, request.method, self._dispatch(method, token, ctx))
            if not (fault.stored_then_failed or self._passthrough(fault)):
                self._consume(fault)  # answer the fault instead of handling the call
                ctx.channel = self._channel_of(ctx.args)
                return self._record(ctx, method, request.method, self._fault_response(fault), injected=True)
            response = self._dispatch(method, token, ctx)
            if fault.stored_then_failed:
                if response.status != 200 or not json.loads(response.body).get("ok"):
                    return self._record(ctx, method, request.method, response)  # fault waits for a success
                status = fault.status if fault.status >= 500 else 500
                response = Response(drop=True) if fault.drop else _html(status)
            self._consume(fault)
            response.delay = fault.seconds
            return self._record(ctx, method, request.method, response, injected=True)

    def _dispatch(self, method: str, token: str | None, ctx: _Ctx) -> Response:
        handler = self._methods.get(method)
        try:
            if method == "api.test":
                return json_response({"ok": True, "args": ctx.args})
            if handler is None:
                raise SlackError("unknown_method")  # checked before auth
            ctx.bot = self._authenticate(token)
            window = self._method_windows.get(method) if self.rate_limits else None
            if window is not None:
                wait = window.wait(ctx.now)
                if wait > 0:
                    raise _RateLimited(wait, "method")
                window.add(ctx.now)
            payload = handler(ctx)
        except SlackError as exc:
            return json_response(self._error(exc))
        except _RateLimited as exc:
            # HTTP 429, whole-second Retry-After (simulated), precise real wait for scaled clients.
            headers = {
                "Retry-After": str(max(1, math.ceil(exc.wait * self.time_scale - 1e-9))),
                "X-Sim-Retry-After-Ms": str(max(1, math.ceil(exc.wait * 1000 - 1e-6))),
                "X-Sim-Rate-Scope": exc.scope,
            }
            return json_response({"ok": False, "error": "ratelimited"}, 429, headers)
        return json_response(payload)

    @staticmethod
    def _error(exc: SlackError) -> dict[str, Any]:
        return {"ok": False, "error": exc.error, **exc.extra}

    def _record(self, ctx: _Ctx, method: str, verb: str, resp: Response, *, injected: bool = False) -> Response:
        error = None
        if resp.body and resp.headers.get("Content-Type", "").startswith("application/json"):
            error = json.loads(resp.body).get("error")
        status = 0 if resp.drop else resp.status
        channel = ctx.channel or (str(ctx.args["channel"]) if "channel" in ctx.args else None)
        args = {k: v for k, v in ctx.args.items() if k != "token"}
        self._calls.append(Call(method, channel, status, error, ctx.now, verb, args, injected, status == 429, ctx.ts))
        return resp

    def _authenticate(self, token: str | None) -> _Bot:
        # every auth failure is HTTP 200 with its own code.
        if not token:
            raise SlackError("not_authed")
        if token not in self._tokens:
            raise SlackError("invalid_auth")
        bot, failure = self._tokens[token]
        if failure:
            raise SlackError(failure)
        return bot

    # -- faults ----------------------------------------------------------------------------------

    def _next_fault(self, method: str, args: Mapping[str, Any]) -> _Fault | None:
        channel = self._channel_of(args)
        return self._faults.find(lambda f: f.method in (method, "*") and f.channel in (None, channel))

    @staticmethod
    def _passthrough(f: _Fault) -> bool:
        # A delay-only fault stalls a real answer: the post is stored, the client times out.
        return f.status == 200 and f.error is None and not f.drop

    def _consume(self, f: _Fault) -> None:
        self._faults.consume(f)

    def _fault_response(self, f: _Fault) -> Response:
        if f.drop:
            return Response(drop=True, delay=f.seconds)
        if f.status == 429:
            wait = f.retry_after if f.retry_after is not None else 1.0
            headers = {
                "Retry-After": str(max(1, math.ceil(wait))),
                "X-Sim-Retry-After-Ms": str(max(1, math.ceil(wait / self.time_scale * 1000))),
                "X-Sim-Rate-Scope": "injected",
            }
            resp = json_response({"ok": False, "error": f.error or "ratelimited"}, 429, headers)
        elif f.error is None:
            resp = _html(f.status)
        else:
            resp = json_response({"ok": False, "error": f.error}, f.status)
        resp.delay = f.seconds
        return resp

    # -- channels and messages -------------------------------------------------------------------

    def _find(self, ref: Any, *, names: bool = True) -> _Channel | None:
        ref = str(ref or "").strip()
        if ref in self._channels:
            return self._channels[ref]
        if names:
            name = ref.lstrip("#")
            return next((c for c in self._channels.values() if c.name == name), None)
        return None

    def _lookup(self, ref: str) -> _Channel:
        ch = self._find(ref)
        if ch is None:
            raise KeyError(f"no channel {ref!r}")
        return ch

    def _channel_of(self, args: Mapping[str, Any]) -> str | None:
        ch = self._find(args.get("channel"))
        return ch.id if ch else (str(args["channel"]) if "channel" in args else None)

    def _channel_arg(self, ctx: _Ctx, *, names: bool = False) -> _Channel:
        # Only chat.postMessage documents names; the conversations.* methods want IDs.
        ch = self._find(ctx.args.get("channel"), names=names)
        if ch is None:
            raise SlackError("channel_not_found")
        ctx.channel = ch.id
        return ch

    def _next_ts(self) -> str:
        # One counter for the whole workspace, so ts is unique and increasing in every channel.
        self._last_us = max(self._last_us + 1, int(self._wall() * 1_000_000))
        return _format_ts(self._last_us)

    def _message(self, ch: _Channel, ts: Any) -> dict[str, Any]:
        for m in self._messages.get(ch.id, []):
            if m["ts"] == str(ts):
                return m
        raise SlackError("message_not_found")

    @staticmethod
    def _view(m: Mapping[str, Any], *, metadata: bool = True) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in m.items() if not k.startswith("_") and v is not None}
        if not metadata:
            out.pop("metadata", None)  # only with include_all_metadata
        return out

    def _channel_view(self, ch: _Channel, bot: _Bot) -> dict[str, Any]:
        return {
            "id": ch.id, "name": ch.name, "name_normalized": ch.name, "is_channel": True, "is_group": False,
            "is_im": False, "is_mpim": False, "is_private": ch.private, "is_archived": ch.archived,
            "is_general": ch.name == "general", "is_member": bot.user_id in ch.members,
            "created": ch.created, "num_members": len(ch.members), "context_team_id": self.team_id,
        }  # fmt: skip

    def _content(self, args: Mapping[str, Any], *, update: bool) -> tuple[dict[str, Any], list[str]]:
        """Validate text/blocks/attachments/metadata into the fields to store."""
        text, blocks, attachments = args.get("text"), args.get("blocks"), args.get("attachments")
        warnings: list[str] = []
        if args.get("markdown_text") is not None:
            if text or blocks:
                raise SlackError("markdown_text_conflict")
            text = str(args["markdown_text"])
            blocks = [{"type": "markdown", "text": text}]  # stored as Slack renders it [INF]
        text = None if text is None else str(text)
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise SlackError(
                    "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
                )
            if block_text_length(blocks) > self.max_block_text:
                raise SlackError("msg_blocks_too_long")  # an undocumented cumulative cap
        if attachments is not None:
            if not isinstance(attachments, list):
                raise SlackError("invalid_attachments")
            if len(attachments) > 100:
                raise SlackError("too_many_attachments")
        if not (text or blocks or attachments):
            raise SlackError("no_text")
        if text is not None and len(text) > _MAX_TEXT:
            if update:
                raise SlackError("msg_too_long")  # still listed for chat.update
            text = text[:_MAX_TEXT]
            warnings.append("message_truncated")
        out: dict[str, Any] = {}
        if text is not None or not update:
            out["text"] = text or ""
        if blocks is not None:
            out["blocks"] = blocks
        if attachments is not None:
            out["attachments"] = attachments
        if "metadata" in args and args["metadata"] is not None:
            if update and args["metadata"] == {}:
                out["metadata"] = None  # {} removes metadata, omitting it keeps the old one
            else:
                _validate_metadata(args["metadata"])
                out["metadata"] = args["metadata"]
        return out, warnings

    @staticmethod
    def _with_warnings(payload: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        if warnings:  # both the top-level string and response_metadata
            payload["warning"] = ",".join(warnings)
            payload["response_metadata"] = {"warnings": warnings, "messages": [f"[WARN] {w}" for w in warnings]}
        return payload

    def _check_post_rate(self, ch: _Channel, now: float) -> None:
        if self.rate_limits:
            bucket = self._buckets.get(ch.id)
            if bucket is None:
                bucket = self._buckets[ch.id] = _Bucket(self.channel_rate * self.time_scale, self.channel_burst, now)
            waits = {"channel": bucket.wait(now), "workspace": self._workspace.wait(now)}
            scope = max(waits, key=lambda k: waits[k])
            if waits[scope] > 0:
                self._post_log.append(PostAttempt(now, ch.id, False, scope))
                raise _RateLimited(waits[scope], scope)
            bucket.take()
            self._workspace.add(now)
        self._post_log.append(PostAttempt(now, ch.id, True))

    # -- Web API methods -------------------------------------------------------------------------

    def _auth_test(self, ctx: _Ctx) -> dict[str, Any]:
        bot = ctx.bot
        assert bot is not None
        return {
            "ok": True, "url": f"https://{self.domain}.slack.com/", "team": self.team, "user": bot.name,
            "team_id": self.team_id, "user_id": bot.user_id, "bot_id": bot.bot_id, "is_enterprise_install": False,
        }  # fmt: skip

    def _post_message(self, ctx: _Ctx) -> dict[str, Any]:
        bot = ctx.bot
        assert bot is not None
        ch = self._channel_arg(ctx, names=True)
        if ch.archived:
            raise SlackError("is_archived")
        if bot.user_id not in ch.members:
            raise SlackError("not_in_channel")  # no chat:write.public in this model
        content, warnings = self._content(ctx.args, update=False)
        self._check_post_rate(ch, ctx.now)  # after validation: only storable posts spend budget
        ts = ctx.ts = self._next_ts()
        msg: dict[str, Any] = {"type": "message", "subtype": "bot_message", "user": bot.user_id, "bot_id": bot.bot_id}
        msg.update(team=self.team_id, ts=ts, **content)
        msg.update(_edits=[], _broadcast=_flag(ctx.args.get("reply_broadcast")))
        thread_ts = ctx.args.get("thread_ts")
        if thread_ts:
            msg["thread_ts"] = str(thread_ts)
            parent = next((m for m in self._messages[ch.id] if m["ts"] == msg["thread_ts"]), None)
            if parent is not None:  # an unknown parent is stored as given [INF]
                parent.update(thread_ts=parent["ts"], reply_count=parent.get("reply_count", 0) + 1, latest_reply=ts)
        self._messages[ch.id].append(msg)
        return self._with_warnings({"ok": True, "channel": ch.id, "ts": ts, "message": self._view(msg)}, warnings)

    def _update(self, ctx: _Ctx) -> dict[str, Any]:
        bot = ctx.bot
        assert bot is not None
        ch = self._channel_arg(ctx)
        if ch.archived:
            raise SlackError("is_archived")  # [INF]: not in the chat.update list
        msg = self._message(ch, ctx.args.get("ts"))
        if msg["bot_id"] != bot.bot_id:
            raise SlackError("cant_update_message")
        content, _ = self._content(ctx.args, update=True)
        msg["_edits"].append({k: copy.deepcopy(msg.get(k)) for k in ("text", "blocks", "attachments", "metadata")})
        msg.update(content)
        msg["edited"] = {"user": bot.user_id, "ts": self._next_ts()}
        ctx.ts = msg["ts"]
        return {"ok": True, "channel": ch.id, "ts": msg["ts"], "text": msg["text"], "message": self._view(msg)}

    def _permalink(self, ctx: _Ctx) -> dict[str, Any]:
        ch = self._channel_arg(ctx)
        msg = self._message(ch, ctx.args.get("message_ts"))
        link = f"https://{self.domain}.slack.com/archives/{ch.id}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts") and msg["thread_ts"] != msg["ts"]:
            link += f"?thread_ts={msg['thread_ts']}&cid={ch.id}"
        return {"ok": True, "channel": ch.id, "permalink": link}

    def _readable(self, ctx: _Ctx) -> _Channel:
        ch = self._channel_arg(ctx)
        assert ctx.bot is not None
        if ctx.bot.user_id not in ch.members:
            raise SlackError("not_in_channel")
        return ch

    def _history(self, ctx: _Ctx) -> dict[str, Any]:
        ch = self._readable(ctx)
        a = ctx.args
        limit = _limit(a, 100, 999)
        inclusive = _flag(a.get("inclusive"))
        oldest = _ts_us(a.get("oldest") or "0", "invalid_ts_oldest")
        latest = _ts_us(a["latest"], "invalid_ts_latest") if a.get("latest") else None
        before = _ts_us(_uncursor("next_ts", a["cursor"]), "invalid_cursor") if a.get("cursor") else None
        picked = []
        for m in reversed(self._messages[ch.id]):  # newest first
            us = _ts_us(m["ts"], "")
            if m.get("thread_ts", m["ts"]) != m["ts"] and not m["_broadcast"]:
                continue  # thread replies live in conversations.replies
            if oldest and (us < oldest or (us == oldest and not inclusive)):
                continue
            if latest is not None and (us > latest or (us == latest and not inclusive)):
                continue
            if before is not None and us >= before:
                continue
            picked.append(m)
        page, more = picked[:limit], len(picked) > limit
        with_meta = _flag(a.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._view(m, metadata=with_meta) for m in page],
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": _cursor("next_ts", page[-1]["ts"]) if more else ""},
        }

    def _replies(self, ctx: _Ctx) -> dict[str, Any]:
        ch = self._readable(ctx)
        parent = self._message(ch, ctx.args.get("ts"))
        root = parent.get("thread_ts", parent["ts"])
        thread = [m for m in self._messages[ch.id] if m["ts"] == root or m.get("thread_ts") == root]
        start = int(_uncursor("next_index", ctx.args["cursor"])) if ctx.args.get("cursor") else 0
        limit = _limit(ctx.args, 1000, 1000)
        page, more = thread[start : start + limit], start + limit < len(thread)
        with_meta = _flag(ctx.args.get("include_all_metadata"))
        return {
            "ok": True,
            "messages": [self._view(m, metadata=with_meta) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": _cursor("next_index", str(start + limit)) if more else ""},
        }

    def _list(self, ctx: _Ctx) -> dict[str, Any]:
        bot = ctx.bot
        assert bot is not None
        a = ctx.args
        types = {t.strip() for t in str(a.get("types") or "public_channel").split(",") if t.strip()}
        if not types <= {"public_channel", "private_channel", "mpim", "im"}:
            raise SlackError("invalid_types")
        limit = _limit(a, 100, 999)  # "must be under 1000"
        chans = [
            c
            for c in self._channels.values()
            if ("private_channel" if c.private else "public_channel") in types
            and not (c.private and bot.user_id not in c.members)  # unseen private channels stay hidden
            and not (c.archived and _flag(a.get("exclude_archived")))
        ]
        if a.get("cursor"):
            start_id = _uncursor("next_id", a["cursor"])
            ids = [c.id for c in chans]
            if start_id not in ids:
                raise SlackError("invalid_cursor")
            chans = chans[ids.index(start_id) :]
        page, rest = chans[:limit], chans[limit:]
        return {
            "ok": True,
            "channels": [self._channel_view(c, bot) for c in page],
            "response_metadata": {"next_cursor": _cursor("next_id", rest[0].id) if rest else ""},
        }

    def _info(self, ctx: _Ctx) -> dict[str, Any]:
        assert ctx.bot is not None
        return {"ok": True, "channel": self._channel_view(self._channel_arg(ctx), ctx.bot)}

    def _join(self, ctx: _Ctx) -> dict[str, Any]:
        bot = ctx.bot
        assert bot is not None
        ch = self._channel_arg(ctx)
        if ch.private:
            raise SlackError("method_not_supported_for_channel_type")  # private needs an invite
        if ch.archived:
            raise SlackError("is_archived")
        warnings = ["already_in_channel"] if bot.user_id in ch.members else []
        ch.members.add(bot.user_id)
        payload = {"ok": True, "channel": self._channel_view(ch, bot)}
        if warnings:  # the warning sits at top level and in response_metadata.warnings
            payload.update(warning=warnings[0], response_metadata={"warnings": warnings})
        return payload

    # -- control API -----------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        """``/__sim/…``: the same inspection and control surface over HTTP, as JSON."""
        action = request.path[len("/__sim/") :].strip("/")
        try:
            body = request.json() or {}
        except ValueError:
            return json_response({"ok": False, "error": "invalid_json"}, 400)
        try:
            if request.method == "GET" and action == "messages":
                return json_response({"ok": True, "messages": self.posted(request.query.get("channel"))})
            if request.method == "GET" and action == "calls":
                return json_response({"ok": True, "calls": [asdict(c) for c in self.calls]})
            if request.method == "GET" and action == "channels":
                with self._lock:
                    views = [self._channel_view(c, self.bot) for c in self._channels.values()]
                return json_response({"ok": True, "channels": views})
            if request.method == "GET" and action == "rate_violations":
                return json_response({"ok": True, "violations": self.rate_violations()})
            if request.method == "POST" and action == "reset":
                self.reset()
                return json_response({"ok": True})
            if request.method == "POST" and action == "inject":
                self.inject(**body)
                return json_response({"ok": True})
            if request.method == "POST" and action == "channels":
                return json_response({"ok": True, "id": self.add_channel(**body)})
            if request.method == "POST" and action in ("archive", "kick_bot"):
                getattr(self, action)(body["channel"])
                return json_response({"ok": True})
            if request.method == "POST" and action == "revoke_token":
                self.revoke_token(**body)
                return json_response({"ok": True})
        except (TypeError, ValueError, KeyError) as exc:
            return json_response({"ok": False, "error": "bad_request", "detail": str(exc)}, 400)
        return json_response({"ok": False, "error": "not_found"}, 404)


def main(argv: list[str] | None = None) -> None:
    """Run one simulator in the foreground: ``python -m simulators.slack --port 0``."""
    parser = argparse.ArgumentParser(prog="python -m simulators.slack", description="Slack Web API simulator.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--channels", help="comma list of channels the bot is in (default: the ERP channels)")
    parser.add_argument("--no-rate-limits", action="store_true", help="log posts but never answer 429")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the valid bot token")
    opts = parser.parse_args(argv)
    channels = [c.strip() for c in opts.channels.split(",") if c.strip()] if opts.channels else None
    sim = SlackSimulator(
        token=opts.token, channels=channels, time_scale=opts.time_scale, rate_limits=not opts.no_rate_limits
    )
    print(f"token {sim.token}; WebClient base_url is the URL below plus /api/", flush=True)
    run_forever(lambda: sim, opts.port)


if __name__ == "__main__":
    main()
