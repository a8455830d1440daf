"""The Slack Web API as the drainer needs it, over slack_sdk, with every failure mapped to one of
``erp_slack.errors``' Slack errors: not sent (``SlackUnavailable``), rate limited
(``SlackRateLimited``), refused (``SlackRejected``, with Slack's code) or maybe posted
(``DeliveryAmbiguous``: reconcile before sending again).
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from erp_slack.errors import DeliveryAmbiguous, SlackRateLimited, SlackRejected, SlackUnavailable
from erp_slack.slack.render import Message

__all__ = ["Posted", "SlackGateway"]

_AMBIGUOUS_CODES = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}

# Reconciliation reads history back to the claim time minus this (our clock vs Slack's), and at
# most this many pages of 200 messages.
_CLOCK_MARGIN = timedelta(minutes=10)

_HISTORY_PAGES = 100


@dataclass(frozen=True)
class Posted:
    channel_id: str
    ts: str


class SlackGateway:
    """The Slack Web API calls the product makes, with typed errors.

    Posts go through a client with **no** retry handlers: slack_sdk's connection retry can
    re-send a message that already arrived. Reads keep the built-in retries.
    """

    def __init__(self, token: str, *, base_url: str | None = None, timeout: float = 10.0, team_url: str | None = None):
        kwargs: dict[str, Any] = {"token": token, "timeout": int(max(1, timeout))}
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self._writer = WebClient(retry_handlers=[], **kwargs)
        self._reader = WebClient(
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=2)],
            **kwargs,
        )
        self._team_url = team_url
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    # One method per remote operation.

    def auth_test(self) -> Mapping[str, Any]:
        """``auth.test``: who the token is; raises SlackRejected for a bad token."""
        data = self._call(self._reader.auth_test, "auth.test")
        self._team_url = self._team_url or data.get("url")
        return data

    def post(self, channel: str, message: Message, *, thread_ts: str | None = None, broadcast: bool = False) -> Posted:
        """``chat.postMessage`` once (a reply in the thread of ``thread_ts`` if given, also shown
        in the channel with ``broadcast``), never retried here."""
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if thread_ts and broadcast:
            extra["reply_broadcast"] = True
        data = self._call(
            lambda: self._writer.chat_postMessage(channel=channel, **message.as_kwargs(), **extra), "chat.postMessage")
        return Posted(channel_id=data["channel"], ts=data["ts"])

    def update(self, channel_id: str, ts: str, message: Message) -> None:
        """``chat.update``: the message at ``ts`` now shows ``message``. Its metadata is left as
        it was (it names the delivery that first posted it, which reconciliation looks for), so
        none is sent. Idempotent: sending the same content twice shows the same message."""
        self._call(lambda: self._writer.chat_update(channel=channel_id, ts=ts, text=message.text, blocks=message.blocks),
                   "chat.update")

    def join(self, channel_id: str) -> None:
        """``conversations.join`` (public channels only)."""
        self._call(lambda: self._reader.conversations_join(channel=channel_id), "conversations.join")

    def channel_info(self, channel_id: str) -> Mapping[str, Any]:
        """``conversations.info``: membership and archive state, for the connection check."""
        return self._call(lambda: self._reader.conversations_info(channel=channel_id), "conversations.info")["channel"]

    def resolve(self, channel: str) -> str:
        """A configured channel (``#ap``, ``ap`` or an ID) → its ID, via ``conversations.list``."""
        if channel[:1] in "CGD" and channel[1:].isalnum() and channel.upper() == channel:
            return channel
        name = channel.lstrip("#")
        with self._lock:
            if name not in self._ids:
                cursor = None
                while True:
                    data = self._call(
                        lambda: self._reader.conversations_list(
                            types="public_channel,private_channel", exclude_archived=False, limit=200, cursor=cursor
                        ),
                        "conversations.list",
                    )
                    for ch in data.get("channels", []):
                        self._ids.setdefault(ch["name"], ch["id"])
                    cursor = (data.get("response_metadata") or {}).get("next_cursor")
                    if not cursor:
                        break
            if name not in self._ids:
                raise SlackRejected("channel_not_found", method="conversations.list")
            return self._ids[name]

    def find_batch(
        self, channel_id: str, batch_uid: str, *, since: datetime | None = None, thread_ts: str | None = None,
    ) -> str | None:
        """The ``ts`` of the message carrying ``batch_uid`` in its metadata, if Slack has it.

        ``since`` bounds the search (a post cannot be older than its claim); a reply is looked
        for in its thread (``thread_ts``: replies are not in the channel's history). "Not found"
        is only answered after reading every message since then; a history too long to read
        raises DeliveryAmbiguous, so the caller keeps the claim instead of posting a second time.
        """
        oldest = f"{(since - _CLOCK_MARGIN).timestamp():.6f}" if since is not None else None
        cursor = None
        for _ in range(_HISTORY_PAGES):
            if thread_ts:
                data = self._call(
                    lambda: self._reader.conversations_replies(
                        channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor,
                        oldest=oldest,
                    ),
                    "conversations.replies",
                )
            else:
                data = self._call(
                    lambda: self._reader.conversations_history(
                        channel=channel_id, include_all_metadata=True, limit=200, cursor=cursor, oldest=oldest,
                    ),
                    "conversations.history",
                )
            for msg in data.get("messages", []):
                payload = (msg.get("metadata") or {}).get("event_payload") or {}
                if payload.get("batch") == batch_uid:
                    return msg["ts"]
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        raise DeliveryAmbiguous("channel history too long to search", method="conversations.history")

    def read_history(self, channel_id: str) -> None:
        """Read one message of the channel's history (what reconciliation needs); raises
        SlackRejected (``missing_scope``, ``not_in_channel``…) if the bot may not."""
        self._call(lambda: self._reader.conversations_history(channel=channel_id, limit=1), "conversations.history")

    def permalink(self, channel_id: str, ts: str) -> str | None:
        """The message's permalink, built the way Slack builds it (saves a call per message)."""
        if not self._team_url:
            return None
        return f"{self._team_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"

    @staticmethod
    def _call(fn: Callable[[], Any], method: str) -> Any:
        try:
            return fn().data
        except SlackApiError as exc:
            resp = exc.response
            status = resp.status_code
            code = (resp.data or {}).get("error", "") if isinstance(resp.data, dict) else ""
            if status == 429 or code in ("ratelimited", "rate_limited"):
                raw = resp.headers.get("Retry-After") or resp.headers.get("retry-after") or "1"
                try:
                    retry_after = float(raw)
                except ValueError:
                    retry_after = 1.0
                raise SlackRateLimited(retry_after, method=method) from None
            if code.startswith("Received a response in a non-JSON"):
                code = ""  # an HTML error page: its text is noise in audit rows
            if status >= 500 or code in _AMBIGUOUS_CODES or (status == 200 and not code):
                raise DeliveryAmbiguous(f"HTTP {status} {code}".strip(), method=method) from None
            raise SlackRejected(code or f"http_{status}", method=method, status=status) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise DeliveryAmbiguous("timed out", method=method) from None
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                raise SlackUnavailable(type(reason).__name__, method=method) from None
            raise DeliveryAmbiguous(type(reason).__name__, method=method) from None
        except (TimeoutError, socket.timeout):
            raise DeliveryAmbiguous("timed out", method=method) from None
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead, BrokenPipeError) as exc:
            raise DeliveryAmbiguous(type(exc).__name__, method=method) from None
