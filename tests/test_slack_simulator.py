"""The Slack simulator checked against the reference facts.

Most tests drive it with the real ``slack_sdk.WebClient`` (retry handlers off, as the sink will
use it), so a wire-format mismatch between the two shows up here first. Raw HTTP is used only
where the SDK cannot send the request (form bodies, GET query strings, the control API).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError

from simulators.slack import ERP_CHANNELS, SlackSimulator, block_text_length, validate_blocks
from tests._fixtures_slack import SlackSimServer


def slack_error(call: Any, *args: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(*args, **kwargs)
    return info.value


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


class FakeClock:
    """A monotonic clock the test moves by hand, so rate tests need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- routing, auth and the error contract ------------------------------------


def test_auth_test_describes_the_seeded_workspace(slack_sim: SlackSimServer) -> None:
    resp = slack_sim.client().auth_test()
    assert resp.status_code == 200
    assert resp["team"] == "Acme Bearings"
    assert resp["url"] == "https://acme-bearings.slack.com/"
    assert resp["team_id"].startswith("T") and resp["user_id"].startswith("U") and resp["bot_id"].startswith("B")
    assert resp["bot_id"] == slack_sim.sim.bot.bot_id


def test_methods_are_served_with_and_without_the_api_prefix(slack_sim: SlackSimServer) -> None:
    from slack_sdk import WebClient

    bare = WebClient(base_url=slack_sim.root, token=slack_sim.token, retry_handlers=[])
    assert bare.auth_test()["ok"]
    assert httpx.get(slack_sim.root + "/api/auth.test", params={"token": slack_sim.token}).json()["ok"]


def test_unknown_method_is_http_200_ok_false(slack_sim: SlackSimServer) -> None:
    err = slack_error(slack_sim.client().api_call, "chat.postEphemeralish")
    assert err.response.status_code == 200
    assert err.response["error"] == "unknown_method"


@pytest.mark.parametrize(
    ("token", "error"),
    [(None, "not_authed"), ("xoxb-nobody", "invalid_auth"), ("xoxb-revoked", "token_revoked")],
)
def test_bad_tokens_fail_with_their_own_codes(slack_sim: SlackSimServer, token: str | None, error: str) -> None:
    slack_sim.sim.add_token("xoxb-revoked")
    slack_sim.sim.revoke_token("xoxb-revoked")
    err = slack_error(slack_sim.client(token=token).chat_postMessage, channel="#ap-invoices", text="x")
    assert (err.response.status_code, err.response["error"]) == (200, error)
    assert slack_sim.sim.posted() == []


def test_default_workspace_channels(slack_sim: SlackSimServer) -> None:
    listed = slack_sim.client().conversations_list(types="public_channel,private_channel")["channels"]
    by_name = {c["name"]: c for c in listed}
    assert set(ERP_CHANNELS) | {"general", "old-ap"} == set(by_name)  # #controllers: bot not invited
    assert all(by_name[n]["is_member"] for n in ERP_CHANNELS)
    assert by_name["old-ap"]["is_archived"]
    assert all(c["id"].startswith("C0") for c in listed)


# -- chat.postMessage: channels, ts, membership -----------------------------------------


def test_post_accepts_id_or_name_and_returns_the_id(slack_sim_factory: Any) -> None:
    slack_sim = slack_sim_factory(rate_limits=False)
    client, cid = slack_sim.client(), slack_sim.sim.channel_id("ap-invoices")
    answers = [client.chat_postMessage(channel=ref, text="hi") for ref in ("#ap-invoices", "ap-invoices", cid)]
    assert {a["channel"] for a in answers} == {cid}
    assert answers[0]["message"]["bot_id"] == slack_sim.sim.bot.bot_id


def test_ts_are_strings_unique_and_increasing(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False)
    client = server.client()
    raw = httpx.post(server.url + "chat.postMessage", json={"channel": "#warehouse", "text": "t"},
                     headers={"Authorization": f"Bearer {server.token}"})  # fmt: skip
    assert isinstance(raw.json()["ts"], str)  # a JSON string, never a float
    stamps = [client.chat_postMessage(channel="#warehouse", text=str(i))["ts"] for i in range(20)]
    assert all(isinstance(ts, str) and len(ts.split(".")[1]) == 6 for ts in stamps)
    assert len(set(stamps)) == 20
    as_pairs = [tuple(map(int, ts.split("."))) for ts in stamps]
    assert as_pairs == sorted(as_pairs)
    assert abs(int(stamps[0].split(".")[0]) - time.time()) < 60  # seeded by the wall clock


def test_ts_stay_unique_under_concurrent_posts(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False)
    stamps: list[str] = []

    def post(channel: str) -> None:
        client = server.client()
        stamps.extend(client.chat_postMessage(channel=channel, text="x")["ts"] for _ in range(5))

    threads = [threading.Thread(target=post, args=(f"#{name}",)) for name in ERP_CHANNELS[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == len(set(stamps)) == 20


def test_not_in_channel_then_join_then_post(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.kick_bot("#purchasing")
    err = slack_error(client.chat_postMessage, channel="#purchasing", text="PO 7 approved")
    assert (err.response.status_code, err.response["error"]) == (200, "not_in_channel")
    joined = client.conversations_join(channel=sim.channel_id("purchasing"))
    assert joined["channel"]["is_member"] and "warning" not in joined.data
    assert client.chat_postMessage(channel="#purchasing", text="PO 7 approved")["ok"]
    again = client.conversations_join(channel=sim.channel_id("purchasing"))
    assert again["warning"] == "already_in_channel"
    assert again["response_metadata"]["warnings"] == ["already_in_channel"]


def test_join_needs_an_id_not_a_name(slack_sim: SlackSimServer) -> None:
    err = slack_error(slack_sim.client().conversations_join, channel="#purchasing")
    assert err.response["error"] == "channel_not_found"


def test_private_channel_without_the_bot(slack_sim: SlackSimServer) -> None:
    client, cid = slack_sim.client(), slack_sim.sim.channel_id("controllers")
    assert slack_error(client.chat_postMessage, channel=cid, text="x").response["error"] == "not_in_channel"
    err = slack_error(client.conversations_join, channel=cid)
    assert err.response["error"] == "method_not_supported_for_channel_type"


@pytest.mark.parametrize(("channel", "error"), [("#old-ap", "is_archived"), ("#nowhere", "channel_not_found"),
                                                ("C0NOSUCHONE", "channel_not_found"), ("", "channel_not_found")])
def test_archived_and_unknown_channels(slack_sim: SlackSimServer, channel: str, error: str) -> None:
    err = slack_error(slack_sim.client().chat_postMessage, channel=channel, text="x")
    assert (err.response.status_code, err.response["error"]) == (200, error)


def test_archive_and_join_archived(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.archive("#gl-postings")
    assert slack_error(client.chat_postMessage, channel="#gl-postings", text="x").response["error"] == "is_archived"
    err = slack_error(client.conversations_join, channel=sim.channel_id("old-ap"))
    assert err.response["error"] == "is_archived"


# -- payload validation: every limit at N and N+1 ---------------------------------


def header(n: int) -> list[dict[str, Any]]:
    return [{"type": "header", "text": {"type": "plain_text", "text": "h" * n}}]


def fields(n: int, size: int = 5) -> list[dict[str, Any]]:
    return [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * size} for _ in range(n)]}]


def context(n: int) -> list[dict[str, Any]]:
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"} for _ in range(n)]}]


LIMITS = [
    ("blocks", lambda n: [section("x") for _ in range(n)], 50, "[json-pointer:/blocks]"),
    ("section text", lambda n: [section("s" * n)], 3000, "[json-pointer:/blocks/0/text/text]"),
    ("header", header, 150, "[json-pointer:/blocks/0/text/text]"),
    ("fields", fields, 10, "[json-pointer:/blocks/0/fields]"),
    ("field text", lambda n: fields(2, n), 2000, "[json-pointer:/blocks/0/fields/0/text]"),
    ("context", context, 10, "[json-pointer:/blocks/0/elements]"),
    ("block_id", lambda n: [section("x", block_id="b" * n)], 255, "[json-pointer:/blocks/0/block_id]"),
]


@pytest.mark.parametrize(("build", "limit", "pointer"), [p[1:] for p in LIMITS], ids=[p[0] for p in LIMITS])
def test_block_kit_limits_at_n_and_n_plus_one(slack_sim_factory: Any, build: Any, limit: int, pointer: str) -> None:
    server = slack_sim_factory(rate_limits=False)
    client = server.client()
    assert client.chat_postMessage(channel="#ap-large", text="ok", blocks=build(limit))["ok"]
    err = slack_error(client.chat_postMessage, channel="#ap-large", text="too big", blocks=build(limit + 1))
    assert (err.response.status_code, err.response["error"]) == (200, "invalid_blocks")
    assert any(pointer in e for e in err.response["errors"])
    assert err.response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert len(server.sim.posted()) == 1


@pytest.mark.parametrize(
    ("blocks", "fragment"),
    [
        ([section("a", block_id="x"), section("b", block_id="x")], "duplicate block_id"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
        ([section("")], "more than 0 characters"),
        ([{"type": "section", "text": {"type": "html", "text": "x"}}], "/blocks/0/text/type"),
        ([{"type": "teleporter"}], "unsupported type"),
        ([{"text": "no type"}], "missing required field: type"),
    ],
)
def test_malformed_blocks(blocks: list[Any], fragment: str) -> None:
    assert any(fragment in e for e in validate_blocks(blocks))


def test_cumulative_block_text_cap(slack_sim_factory: Any) -> None:
    client = slack_sim_factory(rate_limits=False).client()
    at_cap = [section("a" * 3000) for _ in range(4)]
    assert block_text_length(at_cap) == 12_000
    assert client.chat_postMessage(channel="#ap-large", text="t", blocks=at_cap)["ok"]
    over = at_cap + [section("b")]
    assert slack_error(client.chat_postMessage, channel="#ap-large", text="t", blocks=over).response["error"] == (
        "msg_blocks_too_long"
    )


def test_no_text_and_text_truncation(slack_sim: SlackSimServer) -> None:
    client = slack_sim.client()
    with pytest.warns(UserWarning, match="text"):  # slack_sdk nags about missing text too
        assert slack_error(client.chat_postMessage, channel="#warehouse").response["error"] == "no_text"
        empty = slack_error(client.chat_postMessage, channel="#warehouse", text="", blocks=[])
    assert empty.response["error"] == "no_text"
    long = client.chat_postMessage(channel="#ap-invoices", text="z" * 40_001)
    assert long["warning"] == "message_truncated" and len(long["message"]["text"]) == 40_000


@pytest.mark.parametrize(
    "metadata",
    [
        {"event_type": "Invoice Posted", "event_payload": {}},
        {"event_type": "erp_invoice_posted", "event_payload": [1, 2]},
        {"event_payload": {"id": 1}},
        "not-an-object",
    ],
)
def test_bad_metadata(slack_sim: SlackSimServer, metadata: Any) -> None:
    err = slack_error(slack_sim.client().chat_postMessage, channel="#ap-invoices", text="x", metadata=metadata)
    assert err.response["error"] == "invalid_metadata_format"


# -- reading back: history, metadata, paging, permalinks, update --------------------


def test_metadata_only_with_include_all_metadata(slack_sim: SlackSimServer) -> None:
    client, cid = slack_sim.client(), slack_sim.sim.channel_id("ap-invoices")
    meta = {"event_type": "erp_invoice_posted", "event_payload": {"batch_id": "b1", "record_ids": ["INV-1"]}}
    client.chat_postMessage(channel=cid, text="INV-1", metadata=meta)
    plain = client.conversations_history(channel=cid)["messages"][0]
    assert "metadata" not in plain and plain["text"] == "INV-1"
    full = client.conversations_history(channel=cid, include_all_metadata=True)["messages"][0]
    assert full["metadata"] == meta
    assert slack_sim.sim.posted("#ap-invoices")[0]["metadata"] == meta


def test_history_paging_newest_first(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False)
    client, cid = server.client(), server.sim.channel_id("gl-postings")
    stamps = [client.chat_postMessage(channel=cid, text=f"m{i}")["ts"] for i in range(7)]
    pages, cursor = [], None
    while True:
        page = client.conversations_history(channel=cid, limit=3, cursor=cursor)
        pages.append([m["text"] for m in page["messages"]])
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert pages == [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]
    walked = [m["ts"] for p in client.conversations_history(channel=cid, limit=2) for m in p["messages"]]
    assert walked == stamps[::-1]  # slack_sdk's iterator stops on next_cursor == ""
    window = client.conversations_history(channel=cid, oldest=stamps[1], latest=stamps[4])["messages"]
    assert [m["text"] for m in window] == ["m3", "m2"]  # exclusive by default
    window = client.conversations_history(channel=cid, oldest=stamps[1], latest=stamps[4], inclusive=True)
    assert [m["text"] for m in window["messages"]] == ["m4", "m3", "m2", "m1"]
    assert slack_error(client.conversations_history, channel=cid, cursor="bogus").response["error"] == "invalid_cursor"


def test_history_hides_thread_replies_and_replies_lists_them(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False)
    client, cid = server.client(), server.sim.channel_id("ap-invoices")
    parent = client.chat_postMessage(channel=cid, text="batch")["ts"]
    client.chat_postMessage(channel=cid, text="detail", thread_ts=parent)
    top = client.conversations_history(channel=cid)["messages"]
    assert [m["text"] for m in top] == ["batch"] and top[0]["reply_count"] == 1
    thread = client.conversations_replies(channel=cid, ts=parent)["messages"]
    assert [m["text"] for m in thread] == ["batch", "detail"]


def test_permalink_format(slack_sim: SlackSimServer) -> None:
    client, cid = slack_sim.client(), slack_sim.sim.channel_id("finance-alerts")
    ts = client.chat_postMessage(channel=cid, text="x")["ts"]
    link = client.chat_getPermalink(channel=cid, message_ts=ts)["permalink"]
    assert link == f"https://acme-bearings.slack.com/archives/{cid}/p{ts.replace('.', '')}"
    err = slack_error(client.chat_getPermalink, channel=cid, message_ts="1.000001")
    assert err.response["error"] == "message_not_found"


def test_update_edits_in_place(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False)
    client, sim, cid = server.client(), server.sim, server.sim.channel_id("ap-invoices")
    meta = {"event_type": "erp_invoice_posted", "event_payload": {"batch_id": "b9"}}
    ts = client.chat_postMessage(channel=cid, text="draft", metadata=meta)["ts"]
    updated = client.chat_update(channel=cid, ts=ts, text="final", blocks=[section("final")])
    assert updated["ts"] == ts and updated["text"] == "final"
    stored = sim.posted(cid)[0]
    assert stored["text"] == "final" and stored["metadata"] == meta  # omitted metadata is kept
    assert stored["edited"]["user"] == sim.bot.user_id and stored["edits"][0]["text"] == "draft"
    assert slack_error(client.chat_update, channel=cid, ts="1.000001", text="x").response["error"] == (
        "message_not_found"
    )
    sim.add_token("xoxb-other-app")
    other = server.client(token="xoxb-other-app")
    theirs = other.chat_postMessage(channel=cid, text="not yours")["ts"]
    err = slack_error(client.chat_update, channel=cid, ts=theirs, text="mine now")
    assert err.response["error"] == "cant_update_message"


# -- body formats -----------------------------------------------------------


def test_form_encoded_body_with_json_fields(slack_sim: SlackSimServer) -> None:
    meta = {"event_type": "erp_po_approved", "event_payload": {"po": "PO-7"}}
    form = {
        "token": slack_sim.token,
        "channel": "#purchasing",
        "text": "PO-7",
        "blocks": json.dumps([section("*PO-7*")]),
        "metadata": json.dumps(meta),
        "unfurl_links": "0",
    }
    answer = httpx.post(slack_sim.url + "chat.postMessage", data=form).json()
    assert answer["ok"], answer
    stored = slack_sim.sim.posted("purchasing")[0]
    assert stored["blocks"] == [section("*PO-7*")] and stored["metadata"] == meta
    assert "token" not in slack_sim.sim.calls[-1].args
    bad = httpx.post(slack_sim.url + "chat.postMessage", data={**form, "blocks": "[{"}).json()
    assert bad["error"] == "invalid_blocks_format"


def test_json_body_needs_the_token_in_the_header(slack_sim: SlackSimServer) -> None:
    body = {"token": slack_sim.token, "channel": "#purchasing", "text": "x"}
    assert httpx.post(slack_sim.url + "chat.postMessage", json=body).json()["error"] == "not_authed"
    headers = {"Authorization": f"Bearer {slack_sim.token}"}
    assert httpx.post(slack_sim.url + "chat.postMessage", json=body, headers=headers).json()["ok"]
    broken = httpx.post(slack_sim.url + "chat.postMessage", content=b"{", headers={**headers,
                        "Content-Type": "application/json"})  # fmt: skip
    assert broken.status_code == 200 and broken.json()["error"] == "invalid_json"


def test_get_with_query_string_and_boolean_spellings(slack_sim: SlackSimServer) -> None:
    client, cid = slack_sim.client(), slack_sim.sim.channel_id("warehouse")
    meta = {"event_type": "erp_goods_received", "event_payload": {"grn": 1}}
    client.chat_postMessage(channel=cid, text="GRN 1", metadata=meta)
    headers = {"Authorization": f"Bearer {slack_sim.token}"}
    for flag, visible in (("true", True), ("1", True), ("false", False), ("0", False)):
        got = httpx.get(slack_sim.url + "conversations.history", headers=headers,
                        params={"channel": cid, "include_all_metadata": flag}).json()  # fmt: skip
        assert ("metadata" in got["messages"][0]) is visible


def test_conversations_list_paging_types_and_archived(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.add_channel("payroll", private=True)
    names = [c["name"] for p in client.conversations_list(limit=3) for c in p["channels"]]
    assert names == ["general", *ERP_CHANNELS, "old-ap"]
    assert "old-ap" not in [c["name"] for c in client.conversations_list(exclude_archived=True)["channels"]]
    private = client.conversations_list(types="private_channel")["channels"]
    assert [(c["name"], c["is_private"]) for c in private] == [("payroll", True)]
    assert slack_error(client.conversations_list, types="galaxies").response["error"] == "invalid_types"
    info = client.conversations_info(channel=sim.channel_id("old-ap"))["channel"]
    assert info["name"] == "old-ap" and info["is_archived"]


# -- faults -------------------------------------------------------------------------------


def test_injected_errors_are_consumed_in_order(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.inject("chat.postMessage", "internal_error")
    sim.inject("chat.postMessage", status=503)
    first = slack_error(client.chat_postMessage, channel="#ap-invoices", text="x")
    assert (first.response.status_code, first.response["error"]) == (200, "internal_error")
    second = slack_error(client.chat_postMessage, channel="#ap-invoices", text="x")
    assert second.response.status_code == 503 and "non-JSON" in second.response["error"]
    assert client.chat_postMessage(channel="#ap-invoices", text="x")["ok"]
    assert [c.injected for c in sim.calls] == [True, True, False]
    assert len(sim.posted()) == 1


def test_injected_fault_can_target_one_channel(slack_sim: SlackSimServer) -> None:
    client = slack_sim.client()
    slack_sim.sim.inject("chat.postMessage", "channel_not_found", channel="#warehouse", times=2)
    assert client.chat_postMessage(channel="#purchasing", text="x")["ok"]
    for _ in range(2):
        assert slack_error(client.chat_postMessage, channel="#warehouse", text="x").response["error"] == (
            "channel_not_found"
        )
    assert client.chat_postMessage(channel="#warehouse", text="x")["ok"]


def test_injected_429_scales_the_precise_header(slack_sim: SlackSimServer) -> None:
    slack_sim.sim.inject("chat.postMessage", retry_after=5)
    err = slack_error(slack_sim.client().chat_postMessage, channel="#ap-invoices", text="x")
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "5"
    assert err.response.headers["X-Sim-Retry-After-Ms"] == str(5000 // 20)


def test_stored_then_failed_leaves_the_message_visible(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.inject("chat.postMessage", stored_then_failed=True)
    err = slack_error(client.chat_postMessage, channel="#ap-invoices", text="INV-9 approved")
    assert err.response.status_code == 500
    history = client.conversations_history(channel=sim.channel_id("ap-invoices"))["messages"]
    assert [m["text"] for m in history] == ["INV-9 approved"]
    assert sim.calls[0].status == 500 and sim.calls[0].ts == history[0]["ts"]


def test_stored_then_dropped_connection(slack_sim: SlackSimServer) -> None:
    client, sim = slack_sim.client(), slack_sim.sim
    sim.inject("chat.postMessage", stored_then_failed=True, drop=True)
    with pytest.raises(Exception) as info:
        client.chat_postMessage(channel="#ap-invoices", text="INV-10")
    assert not isinstance(info.value, SlackApiError)  # a transport error, no Slack answer at all
    assert [m["text"] for m in sim.posted()] == ["INV-10"]
    assert sim.calls[0].status == 0


def test_delay_makes_the_client_time_out_after_storing(slack_sim: SlackSimServer) -> None:
    sim = slack_sim.sim
    sim.inject("chat.postMessage", seconds=0.3)
    with pytest.raises(Exception):  # noqa: B017 - urllib's timeout type varies by where it fires
        slack_sim.client(timeout=0.05).chat_postMessage(channel="#ap-invoices", text="slow")
    assert [m["text"] for m in sim.posted()] == ["slow"]


def test_drop_without_storing(slack_sim: SlackSimServer) -> None:
    slack_sim.sim.inject("chat.postMessage", drop=True)
    with pytest.raises(Exception):  # noqa: B017
        slack_sim.client().chat_postMessage(channel="#ap-invoices", text="lost")
    assert slack_sim.sim.posted() == []


# -- rate limits ---------------------------------------------------------------------------


def test_fast_posts_get_429_and_accepted_posts_respect_the_rate(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(time_scale=20, channel_burst=1)  # 20 messages/s per channel, strictly
    client, sim = server.client(), server.sim
    limited = []
    for i in range(30):
        try:
            client.chat_postMessage(channel="#ap-invoices", text=f"n{i}")
        except SlackApiError as exc:
            limited.append(exc.response)
    assert limited, "30 back-to-back posts must trip a 20/s limit"
    for resp in limited:
        assert resp.status_code == 429 and resp["error"] == "ratelimited"
        assert resp.headers["Retry-After"].isdigit() and int(resp.headers["Retry-After"]) >= 1
        assert 1 <= int(resp.headers["X-Sim-Retry-After-Ms"]) <= 50
    accepted = [p.t for p in sim.post_log if p.accepted]
    assert len(accepted) + len(limited) == 30 == len(sim.post_log)
    assert all(b - a >= 1 / 20 - 1e-9 for a, b in zip(accepted, accepted[1:]))  # burst 1: spacing
    assert sim.rate_violations() == []
    assert len(sim.posted()) == len(accepted)


def test_other_channels_keep_flowing_and_the_precise_wait_suffices(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(time_scale=20)
    client = server.client()
    for i in range(20):  # back-to-back posts; a slow machine may need a few to trip 20/s
        try:
            client.chat_postMessage(channel="#ap-invoices", text=str(i))
        except SlackApiError as exc:
            refused = exc.response
            break
    else:
        pytest.fail("no 429 in 20 back-to-back posts")
    assert refused.headers["X-Sim-Rate-Scope"] == "channel"
    assert client.chat_postMessage(channel="#purchasing", text="other lane")["ok"]
    time.sleep(int(refused.headers["X-Sim-Retry-After-Ms"]) / 1000)  # at most 50 ms at this scale
    assert client.chat_postMessage(channel="#ap-invoices", text="after the wait")["ok"]


def test_bucket_and_retry_after_with_a_fake_clock(slack_sim_factory: Any) -> None:
    clock = FakeClock()
    server = slack_sim_factory(time_scale=1, channel_burst=2, clock=clock)
    client = server.client()
    assert client.chat_postMessage(channel="#ap-invoices", text="1")["ok"]
    assert client.chat_postMessage(channel="#ap-invoices", text="2")["ok"]  # the burst of 2
    err = slack_error(client.chat_postMessage, channel="#ap-invoices", text="3")
    assert err.response.headers["Retry-After"] == "1" and err.response.headers["X-Sim-Retry-After-Ms"] == "1000"
    assert err.response.headers["X-Sim-Rate-Scope"] == "channel"
    clock.now += 0.4
    err = slack_error(client.chat_postMessage, channel="#ap-invoices", text="3")
    assert err.response.headers["X-Sim-Retry-After-Ms"] == "600"
    clock.now += 0.6
    assert client.chat_postMessage(channel="#ap-invoices", text="3")["ok"]
    assert server.sim.rate_violations() == []
    assert server.sim.rate_violations(burst=1) != []  # two posts at the same instant break burst 1


def test_workspace_window(slack_sim_factory: Any) -> None:
    clock = FakeClock()
    server = slack_sim_factory(time_scale=1, workspace_per_minute=3, clock=clock)
    client = server.client()
    for name in ERP_CHANNELS[:3]:
        client.chat_postMessage(channel=f"#{name}", text="x")
    err = slack_error(client.chat_postMessage, channel="#ap-large", text="x")
    assert err.response.headers["X-Sim-Rate-Scope"] == "workspace"
    assert err.response.headers["Retry-After"] == "60"
    clock.now += 60
    assert client.chat_postMessage(channel="#ap-large", text="x")["ok"]
    assert server.sim.rate_violations() == []


def test_rate_limits_off_still_logs_for_checking(slack_sim_factory: Any) -> None:
    server = slack_sim_factory(rate_limits=False, time_scale=1)
    client = server.client()
    for i in range(3):
        client.chat_postMessage(channel="#warehouse", text=str(i))
    assert all(p.accepted for p in server.sim.post_log)
    assert server.sim.rate_violations("#warehouse")  # a client that does not pace gets caught


def test_optional_tier_limits(slack_sim_factory: Any) -> None:
    clock = FakeClock()
    server = slack_sim_factory(time_scale=1, method_per_minute={"conversations.list": 2}, clock=clock)
    client = server.client()
    client.conversations_list()
    client.conversations_list()
    err = slack_error(client.conversations_list)
    assert err.response.status_code == 429 and err.response.headers["X-Sim-Rate-Scope"] == "method"
    assert client.auth_test()["ok"]  # a 429 on one method does not restrict the others


# -- control API and CLI -----------------------------------------------------------------------


def test_control_api(slack_sim: SlackSimServer) -> None:
    root = slack_sim.root + "/__sim/"
    client = slack_sim.client()
    client.chat_postMessage(channel="#ap-invoices", text="hello")
    got = httpx.get(root + "messages").json()["messages"]
    assert [(m["channel_name"], m["text"]) for m in got] == [("ap-invoices", "hello")]
    assert httpx.get(root + "messages", params={"channel": "#purchasing"}).json()["messages"] == []
    assert httpx.get(root + "calls").json()["calls"][0]["method"] == "chat.postMessage"
    assert httpx.post(root + "inject", json={"method": "chat.postMessage", "error": "fatal_error"}).json()["ok"]
    assert slack_error(client.chat_postMessage, channel="#ap-invoices", text="x").response["error"] == "fatal_error"
    new_id = httpx.post(root + "channels", json={"name": "treasury"}).json()["id"]
    assert client.chat_postMessage(channel="#treasury", text="x")["channel"] == new_id
    assert httpx.post(root + "reset").json()["ok"]
    assert httpx.get(root + "messages").json()["messages"] == []
    assert slack_error(client.chat_postMessage, channel="#treasury", text="x").response["error"] == (
        "channel_not_found"
    )
    assert httpx.post(root + "inject", json={"nope": 1}).status_code == 400


def test_simulator_state_is_per_instance() -> None:
    a, b = SlackSimulator(), SlackSimulator()
    a.add_channel("only-in-a")
    a.inject("auth.test", "internal_error")
    assert b.channel_id("ap-invoices") == a.channel_id("ap-invoices")  # stable IDs
    with pytest.raises(KeyError):
        b.channel_id("only-in-a")


def test_cli_serves_on_a_free_port() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.slack", "--port", "0", "--time-scale", "5", "--channels", "ap,purchasing"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "xoxb-sim-token" in banner
        url = proc.stdout.readline().split()[2]
        answer = httpx.post(url + "/api/chat.postMessage", headers={"Authorization": "Bearer xoxb-sim-token"},
                            json={"channel": "#ap", "text": "from the CLI"}).json()  # fmt: skip
        assert answer["ok"], answer
        assert httpx.get(url + "/__sim/messages").json()["messages"][0]["channel_name"] == "ap"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
