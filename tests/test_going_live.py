"""The README's going-live steps, typed the way a new user types them.

A fresh HOME, no Prefect or project variables in the environment, nothing started by hand: the
simulators stand in for SYSPRO, GP and Slack. `erp-slack up` must start everything itself, and
every later command — `prefect deployment run`, `erp-slack config apply`, a second `up`, `down`
— must reach the same server with the same encryption key.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulators._http import serve_on_loopback
from simulators.gp import GpSimulator
from simulators.slack import SlackSimulator
from simulators.syspro import SysproSimulator
from tests._prefect_runs import free_port, run_id, wait_done

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent



class User:
    """A shell of a new user: fresh HOME, the project folder as working directory."""

    def __init__(self, home: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ERP_SLACK_"))}
        self.env["HOME"] = str(home)

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        exe = str(BIN / argv[0])
        return subprocess.run([exe, *argv[1:]], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *argv: str, timeout: float = 300) -> str:
        res = self.run(*argv, timeout=timeout)
        assert res.returncode == 0, f"{' '.join(argv)} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
        assert "Traceback" not in res.stderr, res.stderr
        return res.stdout


def _config(path: Path, s, g, k, gp: GpSimulator, slack: SlackSimulator, db: Path | str,
            slack_extra: str = "") -> None:
    """A configuration for the three simulators; ``db`` is a SQLite file or a database URL."""
    audit_url = db if isinstance(db, str) else f"sqlite:///{db}"
    path.write_text(f"""
[syspro]
base_url = "{s.url}"
operator = "ENET01"
operator_password = "secret"
company_id = "EDU1"
first_run = "post"

[dynamics_gp]
base_url = "{g.url}/GPService"
company = "Fabrikam, Inc."
username = '{gp.username}'
password = "{gp.password}"
first_run = "post"

[slack]
token = "{slack.token}"
base_url = "{k.url}/api/"
ops_channel = "#finance-alerts"
time_scale = 20
{slack_extra}
[audit]
url = "{audit_url}"
""")





def _pids(home: Path) -> dict[str, int]:
    run = home / ".config" / "erp-slack" / "run"
    return {p.stem: int(p.read_text()) for p in run.glob("*.pid")} if run.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_readme_going_live_steps_from_a_clean_shell(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    user = User(home)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    syspro, gp, slack = SysproSimulator(), GpSimulator(), SlackSimulator(time_scale=20)
    db = tmp_path / "audit.db"
    cfg = tmp_path / "erp-slack.toml"
    with serve_on_loopback(syspro) as s, serve_on_loopback(gp) as g, serve_on_loopback(slack) as k:
        _config(cfg, s, g, k, gp, slack, db)
        try:
            user.ok("erp-slack", "config", "validate", str(cfg))
            user.ok("erp-slack", "check", "--config", str(cfg))
            out = user.ok("erp-slack", "up", "--config", str(cfg), "--detach", "--port", str(port))
            assert "Deployed everything in prefect.yaml" in out and "Worker: started" in out
            assert "secret" not in out and gp.password not in out
            key = home / ".config" / "erp-slack" / "fernet.key"
            assert key.exists() and (key.stat().st_mode & 0o077) == 0

            # `prefect` in the same fresh shell reaches the server up started (its profile).
            run = run_id(user.ok("prefect", "deployment", "run", "syspro-to-slack/poll"))
            assert wait_done(api, run) == "COMPLETED"
            posted = len(slack.posted())
            assert posted > 0

            syspro.insert_invoice(invoice="LIVE-DRY-1", amount="512.00")
            run = run_id(user.ok("prefect", "deployment", "run", "syspro-to-slack/syspro-backfill",
                                  "--param", "since=2020-01-01", "--param", "dry_run=true"))
            assert wait_done(api, run) == "COMPLETED"
            assert len(slack.posted()) == posted  # a dry run posts nothing

            out = user.ok("erp-slack", "config", "apply", str(cfg))
            assert "syspro-to-slack/poll: parameters updated" in out and "every 5 minutes" in out

            pids = _pids(home)
            again = user.ok("erp-slack", "up", "--config", str(cfg), "--detach", "--port", str(port))
            assert "already running" in again and "not starting another" in again
            assert _pids(home) == pids  # no second worker, no second server

            # Every block reads back through the server, secrets included: one key throughout.
            docs = httpx.post(f"{api}/block_documents/filter", json={"include_secrets": True}, timeout=30)
            assert docs.status_code == 200, docs.text[:500]
            names = {d["name"] for d in docs.json()}
            assert {"syspro", "dynamics-gp", "slack", "audit"} <= names
        finally:
            down = user.run("erp-slack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "worker: stopped" in down.stdout and "server: stopped" in down.stdout
    assert not any(_alive(pid) for pid in pids.values())


def test_up_in_the_foreground_stops_worker_and_server_on_sigterm(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    user = User(home)
    port = free_port()
    proc = subprocess.Popen([str(BIN / "erp-slack"), "up", "--port", str(port)], env=user.env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "worker" not in _pids(home):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(1)
        pids = _pids(home)
        assert set(pids) == {"server", "worker"}
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - stopped_at < 30
        assert not any(_alive(pid) for pid in pids.values())
        assert _pids(home) == {}
    finally:
        if proc.poll() is None:
            proc.kill()
        user.run("erp-slack", "down")


def test_down_never_stops_a_process_that_merely_reuses_a_recorded_pid(tmp_path):
    import subprocess as sp

    home = tmp_path / "home"
    run = home / ".config" / "erp-slack" / "run"
    run.mkdir(parents=True)
    bystander = sp.Popen(["sleep", "60"], start_new_session=True)  # not a Prefect process
    try:
        (run / "worker.pid").write_text(f"{bystander.pid}\n")
        out = User(home).ok("erp-slack", "down")
        assert "worker: not running" in out
        assert bystander.poll() is None  # still alive
    finally:
        bystander.kill()
        bystander.wait()


def _active_runs(api: str) -> list[str]:
    res = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
        "flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING"]}}}})
    return [r["id"] for r in res.json()]


def test_ops_hear_from_the_prefect_server_when_runs_stop_completing_once_and_when_they_are_back(tmp_path):
    # Nothing of ours runs when the worker is down, so the Prefect server says it: `up` leaves an
    # automation per scheduled deployment that posts to the ops channel when no run has
    # completed for `late_after` since the last one did (once per gap); the first run after the
    # gap says runs are back.
    home = tmp_path / "home"
    home.mkdir()
    user = User(home)
    user.env["PREFECT_WORKER_QUERY_SECONDS"] = "2"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    syspro, gp, slack = SysproSimulator(), GpSimulator(), SlackSimulator(time_scale=20)
    cfg = tmp_path / "erp-slack.toml"
    missed_words = "no run of syspro-to-slack/poll has completed for 15 seconds"

    def ops_say(words: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            said = [m["text"] for m in slack.posted() if words in (m.get("text") or "")]
            if said or time.monotonic() > deadline:
                return said
            time.sleep(1)

    with serve_on_loopback(syspro) as s, serve_on_loopback(gp) as g, serve_on_loopback(slack) as k:
        _config(cfg, s, g, k, gp, slack, tmp_path / "audit.db")
        cfg.write_text(cfg.read_text().replace('first_run = "post"\n', 'first_run = "post"\nlate_after = 15\n', 1))
        try:
            out = user.ok("erp-slack", "up", "--config", str(cfg), "--detach", "--port", str(port))
            assert "no run of syspro-to-slack/poll completes for 15 seconds" in out
            assert "no run of gp-to-slack/daily completes for 26 hours" in out
            run = run_id(user.ok("prefect", "deployment", "run", "syspro-to-slack/poll"))
            assert wait_done(api, run) == "COMPLETED"

            os.kill(_pids(home)["worker"], signal.SIGTERM)  # the worker goes down
            # A scheduled run (every 5 minutes) already under way may still complete and open
            # a new window; once nothing runs, one window passes and the alert is there.
            deadline = time.monotonic() + 120
            while _active_runs(api) and time.monotonic() < deadline:
                time.sleep(1)
            assert ops_say(missed_words, 120), [m.get("text") for m in slack.posted()]
            said = ops_say(missed_words, 0)
            assert all(slack.token not in m for m in said)
            time.sleep(40)  # more windows without a run: not another word
            assert len(ops_say(missed_words, 0)) == len(said)
            assert not ops_say("gp-to-slack/daily", 0)  # its day is not over

            restarted = time.time()
            worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "erp-slack"], env=user.env,
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                run = run_id(user.ok("prefect", "deployment", "run", "syspro-to-slack/poll"))
                assert wait_done(api, run) == "COMPLETED"
            finally:
                worker.terminate()
                worker.wait(30)
            back = [m for m in slack.posted() if "runs are completing again" in (m.get("text") or "")
                    and float(m["ts"]) > restarted]
            assert len(back) == 1 and "nothing was missed" in str(back[0]["blocks"])
        finally:
            user.run("erp-slack", "down")
    ops = {m["channel"] for m in slack.posted()
           if "syspro-to-slack/poll" in (m.get("text") or "") or "completing again" in (m.get("text") or "")}
    assert ops == {slack.channel_id("#finance-alerts")}
