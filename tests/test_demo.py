"""The demo as a newcomer runs it: progress, what reached Slack, and messages as people see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from erp_slack.slack.render import preview

pytestmark = pytest.mark.prefect
ERP_SLACK = str(Path(sys.executable).parent / "erp-slack")


def test_preview_reads_a_message_as_slack_shows_it():
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Purchase order 000419 for Bearings & Seals"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Status*\nReleased"},
                                       {"type": "mrkdwn", "text": "*Total*\n$7,000.00"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*What changed:* Status In process → Released"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "SYSPRO · <https://erp/x|open in SYSPRO>"}]},
    ]
    text = preview(blocks)
    assert text.splitlines()[0] == "Purchase order 000419 for Bearings & Seals"
    assert "Status: Released" in text and "Total: $7,000.00" in text
    assert "What changed: Status In process → Released" in text
    assert "open in SYSPRO" in text and "<https" not in text


def test_the_demo_shows_progress_and_messages_as_people_see_them(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([ERP_SLACK, "demo", "--time-scale", "50"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.index("→ Starting the SYSPRO") < out.index("→ Running the SYSPRO flow") < out.index("→ Running the Dynamics GP")
    assert "What people see in Slack" in out and "#ap-invoices" in out
    # The order that moved on is one message showing where it stands, with its changes in a thread.
    living = out[out.index("One message per document"):]
    assert "(2 edits)" in living and "Purchase order PO2109" in living and "Status: Received" in living
    assert "↳ Status: New → Released" in living and "↳ Status: Released → Received" in living
    # GL postings in their month's archive thread, and the scheduled summary that was due.
    archive = out[out.index("A month's archive thread"):]
    assert "GL journal entries · May 2024 · EDU1" in archive and "↳ " in archive
    summary = out[out.index("A scheduled summary"):]
    assert "Purchase orders not yet received · " in summary and "PO2107" in summary and "PO2109" not in summary
    assert "Traceback" not in result.stderr
