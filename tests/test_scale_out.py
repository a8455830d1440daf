"""Scale-out as the README describes it, run for real: a Prefect server on PostgreSQL, two
process workers (two "hosts"), the audit store on PostgreSQL, `shared_rate_limits = true`.

Host A runs `erp-slack up --database … --no-worker` and a worker; host B runs only
`prefect worker start --pool erp-slack` with `PREFECT_API_URL` pointing at host A. Both take
runs of the scheduled deployments (`syspro-to-slack/poll`, `gp-to-slack/daily`, created
here with `prefect deployment run`, as the scheduler creates them) and of an overlapping live
backfill, while new documents arrive between rounds. Then: every record reached Slack once, no
post was refused for its rate, and no watermark ever moved backwards.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from erp_slack.model import parse_cursor
from erp_slack.sources import all_entities
from erp_slack.store import Store
from simulators._http import serve_on_loopback
from simulators.gp import GpSimulator
from simulators.slack import SlackSimulator
from simulators.syspro import SysproSimulator
from tests._fixtures_store import PG_URL, _pg_schema_url
from tests._prefect_runs import free_port, run_id, wait_done
from tests.test_going_live import BIN, ROOT, User, _config

pytestmark = [
    pytest.mark.slow, pytest.mark.prefect, pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: set ERP_SLACK_TEST_PG_URL (.ci/run always does)"),
]


@pytest.fixture
def prefect_db() -> Iterator[str]:
    """A fresh PostgreSQL database for the Prefect server, dropped afterwards."""
    name = f"prefect_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen:
    # `--limit 1`: each host runs one flow at a time, so the runs below are spread over both.
    return subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "erp-slack", "--name", name, "--limit", "1"],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_two_hosts_on_a_postgresql_prefect_deliver_every_record_once_at_the_channel_rate(tmp_path, prefect_db):
    home = tmp_path / "host-a"
    home.mkdir()
    user = User(home)
    user.env["PREFECT_WORKER_QUERY_SECONDS"] = "2"  # pick runs up quickly (default 15 s)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    host_b = {k: v for k, v in user.env.items()}
    host_b.update(HOME=str(tmp_path / "host-b"), PREFECT_API_URL=api)
    (tmp_path / "host-b").mkdir()
    syspro, gp, slack = SysproSimulator(), GpSimulator(), SlackSimulator(time_scale=20)
    audit_gen = _pg_schema_url()
    audit_url = next(audit_gen)
    cfg = tmp_path / "erp-slack.toml"
    workers: list[subprocess.Popen] = []
    runs: list[str] = []
    vouchers: list[str] = []
    try:
        with serve_on_loopback(syspro) as s, serve_on_loopback(gp) as g, serve_on_loopback(slack) as k:
            _config(cfg, s, g, k, gp, slack, audit_url, slack_extra="shared_rate_limits = true\n")
            out = user.ok("erp-slack", "up", "--config", str(cfg), "--detach", "--no-worker", "--port", str(port),
                          "--database", prefect_db)
            assert "Global concurrency limits created" in out
            workers.append(_worker(user.env, "host-a", tmp_path / "worker-a.log"))
            workers.append(_worker(host_b, "host-b", tmp_path / "worker-b.log"))

            # The server really keeps its state in PostgreSQL.
            with create_engine(prefect_db).connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM deployment")).scalar_one() >= 5

            def start(*argv: str) -> str:
                rid = run_id(user.ok("prefect", "deployment", "run", *argv))
                runs.append(rid)
                return rid

            for round_ in range(3):
                if round_:
                    for i in range(4):
                        syspro.insert_invoice(invoice=f"SCALE-{round_}-{i}", amount=f"{100 + i}.00")
                    vouchers.append(gp.add_invoice("ACETRAVE0001", f"SCALE-GP-{round_}", "250.00", posted=True))
                batch = [start("syspro-to-slack/poll"), start("gp-to-slack/daily")]
                if round_ == 1:
                    # A live backfill of the same source overlapping the scheduled poll.
                    batch.append(start("syspro-to-slack/syspro-backfill", "--param", "since=2020-01-01"))
                states = {rid: wait_done(api, rid, timeout=300) for rid in batch}
                assert set(states.values()) == {"COMPLETED"}, states
    finally:
        for w in workers:
            _stop(w)
        user.run("erp-slack", "down")

    # Both hosts ran flows.
    logs = {name: (tmp_path / f"worker-{name}.log").read_text() for name in ("a", "b")}
    # A host may try a run and be turned back (it waits for the source's lock); count where it ran.
    ran = {name: [r for r in runs if f"submitting flow run '{r}'" in log
                  and f"Aborted submission of flow run '{r}'" not in log] for name, log in logs.items()}
    assert ran["a"] and ran["b"], f"runs per host: { {n: len(r) for n, r in ran.items()} }"
    assert sorted(ran["a"] + ran["b"]) == sorted(runs)

    store = Store(audit_url)
    try:
        rows = store.deliveries()
        # Every record once: nothing left behind, each sent row in exactly one Slack message.
        assert {r["status"] for r in rows} <= {"sent", "filtered"}
        sent = {r["uid"] for r in rows if r["status"] == "sent"}
        shown: dict[str, int] = {}
        for m in slack.posted():
            for uid in ((m.get("metadata") or {}).get("event_payload") or {}).get("deliveries", []):
                shown[uid] = shown.get(uid, 0) + 1
        assert set(shown) == sent and max(shown.values()) == 1
        sent_keys = [r["record_key"] for r in rows if r["status"] == "sent"]
        for invoice in [f"SCALE-{n}-{i}" for n in (1, 2) for i in range(4)] + vouchers:
            assert any(key.endswith(invoice) for key in sent_keys), f"{invoice} never reached Slack"
        # No channel over its rate: Slack refused nothing.
        refused = [p for p in slack.post_log if not p.accepted]
        assert refused == [], f"{len(refused)} posts refused by the rate limit"
        # No watermark backwards, whichever host polled.
        kinds = {(e.source, e.name): e.cursor.kind for e in all_entities().values()}
        seen: dict[tuple[str, str], object] = {}
        polls = [a for a in store.audit_rows("poll") if a["details"] and not a["details"].get("dry_run")]
        assert polls
        for a in polls:
            # Runs of one source never overlap (its lock), so in the order they were recorded
            # each poll's watermark is at least the one before, a backfill's unchanged.
            d, key = a["details"], (a["source"], a["entity"])
            if not d.get("watermark_after"):
                continue
            value = parse_cursor(kinds[key], d["watermark_after"])
            assert key not in seen or value >= seen[key], f"{key} went back from {seen[key]} to {value}"
            seen[key] = value
        assert len(seen) >= 8
    finally:
        store.dispose()
        next(audit_gen, None)
