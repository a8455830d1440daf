"""The erp-slack command: configuration errors, the connection check, reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

SECRETS = ("s3cr3t-operator-pw", "gp-pa55word-xyz", "xoxb-super-secret-token")


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "erp-slack.toml"
    p.write_text(text)
    return str(p)


GOOD = """
[syspro]
base_url = "https://syspro.example"
operator = "OP"
operator_password = "s3cr3t-operator-pw"
company_id = "EDU1"

[slack]
token = "xoxb-super-secret-token"
"""


@pytest.mark.parametrize(
    "edit, field, problem",
    [
        (("https://syspro.example", "ftp://syspro.example"), "syspro.base_url", "must start with http:// or https://"),
        (('company_id = "EDU1"', 'company_id = "EDU1"\ncolour = "red"'), "syspro.colour", "unknown setting"),
        (("xoxb-super-secret-token", "not-a-token-super-secret"), "slack.token", "must be a Slack bot token"),
        (('[slack]', '[slack]\nrate_per_channel = 0'), "slack.rate_per_channel", "greater than 0"),
        (('operator_password = "s3cr3t-operator-pw"', 'operator_password = "env:NO_SUCH_VAR_HERE"'),
         "syspro.operator_password", "environment variable NO_SUCH_VAR_HERE is not set"),
        (('[slack]', '[[routes]]\nentity = "ap_invoice"\n\n[slack]'), "routes.0", "needs a channel"),
        (('[slack]', '[audit]\nurl = "not a url at all s3cr3t-operator-pw"\n\n[slack]'), "audit.url", "is not a database URL"),
    ],
)
def test_malformed_config_is_rejected_naming_the_field(tmp_path, capsys, edit, field, problem):
    path = write(tmp_path, GOOD.replace(*edit))
    assert main(["config", "validate", path]) == 2
    err = capsys.readouterr().err
    assert f"{field}: " in err and problem in err
    assert not any(s in err for s in SECRETS)


def test_not_toml_is_rejected(tmp_path, capsys):
    assert main(["config", "validate", write(tmp_path, "[syspro\nbase_url=")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_valid_config_summary_shows_no_secret(tmp_path, capsys):
    assert main(["config", "validate", write(tmp_path, GOOD)]) == 0
    out = capsys.readouterr().out
    assert "SYSPRO (enet) https://syspro.example operator OP company EDU1" in out
    assert not any(s in out for s in SECRETS)


def test_example_config_is_valid(monkeypatch):
    from erp_slack.config import load_config

    for var in ("SYSPRO_OPERATOR_PASSWORD", "GP_PASSWORD", "SLACK_BOT_TOKEN"):
        monkeypatch.setenv(var, "xoxb-example" if var == "SLACK_BOT_TOKEN" else "example")
    cfg = load_config(Path(__file__).parent.parent / "erp-slack.example.toml")
    from erp_slack.routing import DEFAULT_ROUTES

    assert cfg.syspro and cfg.dynamics_gp
    # The example shows every default route, so a copy of it routes every entity somewhere.
    assert {(tuple(r.entities), r.channel) for r in DEFAULT_ROUTES} <= {(tuple(r.entities), r.channel) for r in cfg.routes}
    assert cfg.dynamics_gp.verify.endswith("certs/gp-ca.pem") and Path(cfg.dynamics_gp.verify).is_absolute()


def sim_config(syspro_sim, gp_sim, slack_sim, db: Path, *, syspro_pw=None, extra_routes="") -> str:
    return f"""
[syspro]
base_url = "{syspro_sim.url}"
operator = "{syspro_sim.operator}"
operator_password = "{syspro_pw or syspro_sim.password}"
company_id = "{syspro_sim.company}"

[dynamics_gp]
base_url = "{gp_sim.base_url}"
tenant = "{gp_sim.tenant}"
company = "{gp_sim.company}"
username = '{gp_sim.username}'
password = "{gp_sim.password}"

[slack]
token = "{slack_sim.token}"
base_url = "{slack_sim.url}"
ops_channel = "#finance-alerts"

[audit]
url = "sqlite:///{db}"
{extra_routes}
"""


def test_check_against_the_simulators_is_all_ok(tmp_path, capsys, syspro_sim, gp_sim, slack_sim):
    path = write(tmp_path, sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db"))
    assert main(["check", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "0 failed" in out
    for line in ("log on", "read ap_invoice", "read payables_invoice", "auth.test", "post to #ap-invoices",
                 "open and migrate"):
        assert line in out
    assert slack_sim.sim.posted() == []  # the check posts nothing
    assert syspro_sim.sim.sessions() == []  # logged off again


def test_check_reports_a_wrong_password_and_a_missing_channel(tmp_path, capsys, syspro_sim, gp_sim, slack_sim):
    routes = '\n[[routes]]\nentity = "*"\nchannel = "#no-such-channel"\n'
    path = write(tmp_path, sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db", syspro_pw="wrong-pw-123",
                                      extra_routes=routes))
    assert main(["check", "--config", path]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert any(line.startswith("SYSPRO") and "log on" in line and "Check the user name" in line for line in failed)
    assert any("#no-such-channel" in line and "channel_not_found" in line for line in failed)
    assert "wrong-pw-123" not in out and gp_sim.password not in out
    assert slack_sim.sim.posted() == []


def test_report_and_requeue_on_an_empty_store(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["report", "--db", db]) == 0
    assert "_nothing yet_" in capsys.readouterr().out
    assert main(["requeue", "--db", db]) == 0
    assert "0 failed deliveries put back" in capsys.readouterr().out


def test_an_unreachable_audit_database_is_a_message_not_a_traceback(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    assert main(["report", "--db", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("audit database error: OperationalError") and "Traceback" not in err


def test_a_config_that_is_not_utf8_is_named(tmp_path, capsys):
    p = tmp_path / "cp1252.toml"
    p.write_bytes(GOOD.replace("OP", "Müller").encode("cp1252"))
    assert main(["config", "validate", str(p)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_check_names_a_channel_whose_history_the_bot_cannot_read(tmp_path, capsys, syspro_sim, gp_sim, slack_sim):
    path = write(tmp_path, sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db"))
    slack_sim.sim.inject("conversations.history", "missing_scope", times=1)
    assert main(["check", "--config", path]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "read history of" in failed[0] and "channels:history" in failed[0]


def test_check_against_a_host_that_is_down_is_one_connect_row_and_fast(tmp_path, capsys, syspro_sim, gp_sim,
                                                                       slack_sim):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    text = sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db").replace(syspro_sim.url, gone, 1)
    started = time.monotonic()
    assert main(["check", "--config", write(tmp_path, text)]) == 1
    assert time.monotonic() - started < 30
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("SYSPRO")]
    assert len(lines) == 1 and "connect" in lines[0] and "FAILED" in lines[0] and "firewall" in lines[0]
    assert "log on" not in lines[0]


def test_status_shows_per_entity_where_each_stands(tmp_path, capsys, syspro_sim, gp_sim, slack_sim):
    from erp_slack.cycle import run_cycle
    from erp_slack.store import Store
    from tests._cycle import slack_out

    db = f"sqlite:///{tmp_path / 'audit.db'}"
    assert main(["status", "--db", db]) == 0
    assert "nothing polled yet" in capsys.readouterr().out
    store = Store(db)
    from erp_slack.sources.syspro.client import connect

    def open_client(audit):
        return connect("enet", base_url=syspro_sim.url, operator=syspro_sim.operator,
                       operator_password=syspro_sim.password, company=syspro_sim.company, audit=audit)

    syspro_sim.sim.insert_invoice(supplier="0000001", amount="99.00")
    slack_sim.sim.archive("#purchasing")  # purchase orders cannot be posted: they end failed
    from erp_slack.errors import DeliveryFailed
    from erp_slack.sources.syspro.entities import ENTITIES_ENET

    try:
        run_cycle(open_client, ENTITIES_ENET, store, slack_out(slack_sim), source="syspro", company="EDU1",
                  first_run="post")
    except DeliveryFailed:
        pass
    store.dispose()
    assert main(["status", "--db", db]) == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[3].strip(): line for line in out.splitlines() if line.startswith("| syspro")}
    assert set(lines) == {e.name for e in ENTITIES_ENET}
    assert "min ago" in lines["ap_invoice"] and "rowversion 0x" in lines["ap_invoice"]
    cells = [c.strip() for c in lines["purchase_order"].split("|")]
    header = [c.strip() for c in out.splitlines()[0].split("|")]
    assert int(cells[header.index("Failed")]) > 0 and int(cells[header.index("Pending")]) == 0


def test_check_finds_the_other_gp_service_and_prints_the_lines_to_use_it(tmp_path, capsys, syspro_sim, gp_sim,
                                                                        slack_sim):
    gp_sim.sim.configure(expose_gl=False)  # this site's SBA has no GL resource; its Web Services do
    path = write(tmp_path, sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db"))
    assert main(["check", "--config", path]) == 0
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if "discover" in line]
    assert any("discover sba" in line and "not gl_journal" in line for line in found), out
    assert any("discover webservices" in line and "gl_journal" in line and "not " not in line for line in found), out
    assert "the webservices transport also reads gl_journal" in out
    assert 'transport = "webservices"' in out and f'base_url = "{gp_sim.url}/DynamicsGPWebServices"' in out
    assert gp_sim.password not in out


def test_check_says_when_syspro_will_not_show_the_timestamp_change_capture_needs(tmp_path, capsys, gp_sim, slack_sim):
    from simulators._http import serve_on_loopback
    from simulators.syspro import SysproSimulator
    from tests._fixtures_syspro import SysproServed

    sim = SysproSimulator(comfnd_timestamp=False)  # a SYSPRO whose COMFND cannot select TimeStamp
    with serve_on_loopback(sim) as served:
        path = write(tmp_path, sim_config(SysproServed(sim=sim, url=served.url), gp_sim, slack_sim, tmp_path / "a.db"))
        assert main(["check", "--config", path]) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if line.startswith("SYSPRO") and "FAILED" in line]
    assert failed and all("TimeStamp" in line for line in failed), failed
    assert any("read ap_invoice" in line and "transport = \"odata\"" in line for line in failed)
    gp_reads = [line for line in lines if line.startswith("Dynamics GP") and "read payables_invoice" in line]
    assert gp_reads and "ModifiedDate readable" in gp_reads[0]


def test_check_lists_how_each_rule_posts_and_who_it_mentions(tmp_path, capsys, syspro_sim, gp_sim, slack_sim):
    routes = ('\n[[routes]]\nname = "urgent"\nentity = "ap_invoice"\nmin_amount = 50000\nchannel = "#ap-large"\n'
              'notify = ["S0614TZR7", "@here"]\nurgent = true\n\n'
              '[[routes]]\nname = "gl"\nentity = "gl_journal"\nchannel = "#gl-postings"\narchive = "month"\n'
              'archive_timezone = "Europe/London"\n\n'
              '[[routes]]\nentity = "*"\nchannel = "#ap-invoices"\nmessage = "new-message"\n')
    path = write(tmp_path, sim_config(syspro_sim, gp_sim, slack_sim, tmp_path / "a.db", extra_routes=routes))
    assert main(["check", "--config", path]) == 0
    out = capsys.readouterr().out.splitlines()
    line = next(line for line in out if "mentions of urgent" in line)
    assert "#ap-large: user groups S0614TZR7; everyone in the channel @here" in line
    how = {line.split("messages of ")[1].split()[0]: line for line in out if "messages of " in line}
    assert "sent even in quiet hours" in how["urgent"] and "edited as it changes" in how["urgent"]
    assert "replies in monthly archive threads (Europe/London)" in how["gl"]
    assert "a message per change" in how["rule"]
    assert slack_sim.sim.posted() == []
