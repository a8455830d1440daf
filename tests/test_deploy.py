"""One-machine production for real: a Prefect server, `erp-slack up`, prefect.yaml, a process worker.

Slow (a server and a worker start, and every flow run is a subprocess), so it is marked; CI runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from simulators._http import serve_on_loopback
from simulators.gp import GpSimulator
from simulators.slack import SlackSimulator
from simulators.syspro import SysproSimulator
from tests._prefect_runs import free_port, run_id, wait_done

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent



def _wait_healthy(api: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            if httpx.get(api + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("prefect server did not become healthy")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(
        os.environ,
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_WORKER_PREFETCH_SECONDS="2",
        PREFECT_SERVER_ENCRYPTION_KEY="ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    )
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(api, proc)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _flow_runs(api: str) -> list[dict]:
    r = httpx.post(api + "/flow_runs/filter", json={"limit": 50}, timeout=10)
    r.raise_for_status()
    return r.json()


def _deployment_run(env: dict[str, str], name: str, *params: str) -> str:
    argv = [str(BIN / "prefect"), "deployment", "run", name]
    for p in params:
        argv += ["--param", p]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return run_id(out.stdout)



def test_prefect_yaml_deploys_and_a_process_worker_runs_every_flow(prefect_server, tmp_path):
    env = prefect_server
    api = env["PREFECT_API_URL"]
    syspro, gp, slack = SysproSimulator(), GpSimulator(), SlackSimulator(time_scale=20)
    db = tmp_path / "audit.db"
    with serve_on_loopback(syspro) as s, serve_on_loopback(gp) as g, serve_on_loopback(slack) as k:
        cfg = tmp_path / "erp-slack.toml"
        cfg.write_text(f"""
[syspro]
base_url = "{s.url}"
operator = "ENET01"
operator_password = "secret"
company_id = "EDU1"
interval_minutes = 10
first_run = "post"

[dynamics_gp]
base_url = "{g.url}/GPService"
company = "Fabrikam, Inc."
username = '{gp.username}'
password = "{gp.password}"
first_run = "post"

[dynamics_gp.schedule]
at = 07:30:00
timezone = "Europe/Berlin"

[slack]
token = "{slack.token}"
base_url = "{k.url}/api/"
ops_channel = "#finance-alerts"
time_scale = 20

[[slack.summaries]]
title = "Open payables"
channel = "#ap-invoices"
at = ["00:00", "09:30"]
timezone = "Europe/Berlin"
entity = "payables_invoice"

[audit]
url = "sqlite:///{db}"
""")
        up = subprocess.run([str(BIN / "erp-slack"), "up", "--config", str(cfg), "--no-worker", "--project-dir", str(ROOT)],
                            env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Deployed everything in prefect.yaml" in up.stdout
        assert "secret" not in up.stdout + up.stderr and gp.password not in up.stdout + up.stderr

        limits = httpx.post(api + "/v2/concurrency_limits/filter", json={}, timeout=10).json()
        assert {"erp-source-syspro-edu1", "erp-source-gp-fabrikam--inc"} <= {lim["name"] for lim in limits}

        deps = httpx.post(api + "/deployments/filter", json={}, timeout=10).json()
        names = {(d["name"], d["entrypoint"]) for d in deps}
        assert ("poll", "flows.syspro.syspro_to_slack") in names and ("daily", "flows.gp.gp_to_slack") in names
        by_name = {f"{d['entrypoint']}:{d['name']}": d for d in deps}
        sched = by_name["flows.syspro.syspro_to_slack:poll"]["schedules"][0]["schedule"]
        assert sched["interval"] == 600.0  # the file's interval_minutes, not prefect.yaml's default
        gp_sched = by_name["flows.gp.gp_to_slack:daily"]["schedules"][0]["schedule"]
        # 07:30 in Berlin, every day: a cron in the configured time zone.
        assert (gp_sched["cron"], gp_sched["timezone"]) == ("30 7 * * *", "Europe/Berlin")
        # The summaries deployment: one cron per summary time, in the summary's time zone.
        summaries = by_name["flows.summaries.erp_summaries:summaries"]
        assert sorted((x["schedule"]["cron"], x["schedule"]["timezone"]) for x in summaries["schedules"]) == [
            ("0 0 * * *", "Europe/Berlin"), ("30 9 * * *", "Europe/Berlin")]
        assert not summaries["paused"]

        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "erp-slack"], env=env, cwd=ROOT,
                                  stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            syspro_run = _deployment_run(env, "syspro-to-slack/poll")
            gp_run = _deployment_run(env, "gp-to-slack/daily")
            assert wait_done(api, syspro_run) == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            assert wait_done(api, gp_run) == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            summary_run = _deployment_run(env, "erp-slack-summaries/summaries")
            assert wait_done(api, summary_run) == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            (summary,) = [m for m in slack.posted("#ap-invoices")
                          if m["metadata"]["event_type"] == "erp_summary_posted"]
            assert summary["blocks"][0]["text"]["text"].startswith("Open payables · ")
            posted = len(slack.posted())
            assert posted > 0

            # A dry-run backfill over all history, after a new invoice arrived: it posts nothing
            # and records as dry-run exactly what a live run would post (the new invoice and its
            # AP journal entry), not what was posted already.
            syspro.insert_invoice(invoice="DRY-RUN-1", amount="777.00")
            backfill = _deployment_run(env, "syspro-to-slack/syspro-backfill", "since=0", "dry_run=true")
            assert wait_done(api, backfill) == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
            assert len(slack.posted()) == posted
            with create_engine(f"sqlite:///{db}").connect() as conn:
                dry = conn.execute(text("SELECT entity, record_key FROM deliveries WHERE status = 'dry-run'")).all()
            assert {e for e, _ in dry} == {"ap_invoice", "ap_journal"} and len(dry) == 2
            assert any(k.endswith("|DRY-RUN-1") for e, k in dry if e == "ap_invoice")
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
