"""``erp-slack run`` as a person meets it: a failed run is one line on stderr, never a traceback.

The command runs in a child process with a fresh HOME and no Prefect variables, against the
simulators served by this test, exactly as someone types it after following the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect

ERP_SLACK = str(Path(sys.executable).parent / "erp-slack")


def _config(tmp_path: Path, syspro_sim, slack_sim, *, password: str) -> Path:
    path = tmp_path / "erp-slack.toml"
    path.write_text(f"""
[syspro]
base_url = "{syspro_sim.url}"
operator = "{syspro_sim.operator}"
operator_password = "{password}"
company_id = "{syspro_sim.company}"
first_run = "post"

[slack]
token = "{slack_sim.token}"
base_url = "{slack_sim.url}"
ops_channel = "#finance-alerts"

[audit]
url = "sqlite:///{tmp_path / 'audit.db'}"
""")
    return path


def _run(tmp_path: Path, config: Path, *extra: str, source: str = "syspro") -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ERP_SLACK_"))}
    env["HOME"] = str(home)
    return subprocess.run([ERP_SLACK, "run", source, "--config", str(config), *extra], env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("problem", ["wrong password", "refused table"])
def test_a_failed_run_prints_what_failed_and_what_to_do_without_a_traceback(
    tmp_path, syspro_sim, slack_sim, problem
):
    password = "wrong-pw-123" if problem == "wrong password" else syspro_sim.password
    if problem == "refused table":
        syspro_sim.sim.inject("error_text", path="Query/Query", text="ERROR: Access denied to table ApInvoice")
    result = _run(tmp_path, _config(tmp_path, syspro_sim, slack_sim, password=password))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    if problem == "wrong password":
        assert "Invalid operator password" in errors[0] and "Check the user name and password" in errors[0]
    else:
        assert "Access denied to table ApInvoice" in errors[0] and "reachable" in errors[0]
    assert "wrong-pw-123" not in result.stderr + result.stdout
    # The ops channel heard about it, once.
    assert len(slack_sim.sim.posted("#finance-alerts")) == 1


def test_debug_shows_the_traceback(tmp_path, syspro_sim, slack_sim):
    result = _run(tmp_path, _config(tmp_path, syspro_sim, slack_sim, password="wrong-pw-123"), "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "SourceAuthFailed" in result.stderr


def test_a_key_file_others_can_read_is_refused_with_the_command_that_fixes_it(tmp_path, syspro_sim, slack_sim):
    key = tmp_path / "home" / ".config" / "erp-slack" / "fernet.key"
    key.parent.mkdir(parents=True)
    key.write_text("not-read-before-the-mode-is-checked\n")
    key.chmod(0o644)
    result = _run(tmp_path, _config(tmp_path, syspro_sim, slack_sim, password=syspro_sim.password))
    assert result.returncode != 0
    assert f"chmod 600 {key}" in result.stderr and "Traceback" not in result.stderr
    assert syspro_sim.sim.counters.get("Logon", 0) == 0  # refused before anything was read
    key.chmod(0o600)


def test_the_audit_database_and_its_wal_are_private(tmp_path, syspro_sim, slack_sim):
    result = _run(tmp_path, _config(tmp_path, syspro_sim, slack_sim, password=syspro_sim.password))
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in tmp_path.glob("audit.db*")]
    assert tmp_path / "audit.db" in files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, (path, oct(path.stat().st_mode))


def test_run_summaries_posts_what_is_due_once_and_a_failing_one_is_one_error_line(tmp_path, syspro_sim, slack_sim):
    config = _config(tmp_path, syspro_sim, slack_sim, password=syspro_sim.password)
    config.write_text(config.read_text().replace("[audit]", """[[slack.summaries]]
title = "Open supplier invoices"
channel = "#ap-invoices"
at = ["00:00"]
entity = "ap_invoice"

[audit]"""))
    assert _run(tmp_path, config).returncode == 0  # the SYSPRO run records the invoices
    first = _run(tmp_path, config, source="summaries")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "#ap-invoices Open supplier invoices: posted (" in first.stdout
    summaries = [m for m in slack_sim.sim.posted("#ap-invoices") if m["metadata"]["event_type"] == "erp_summary_posted"]
    assert len(summaries) == 1 and "Open supplier invoices · 00:00" in summaries[0]["blocks"][0]["text"]["text"]

    config.write_text(config.read_text().replace('channel = "#ap-invoices"\nat', 'channel = "#nowhere"\nat'))
    failed = _run(tmp_path, config, source="summaries")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr + failed.stdout
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "channel_not_found" in errors[0], failed.stderr[-2000:]
