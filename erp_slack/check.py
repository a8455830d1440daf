"""The connection check: "add your credentials, ping your real systems, and see if we fit".

Logs on to each configured source and off again, reads one row of each entity, asks Slack who
the token is and whether the bot can post in every routed channel, and opens the audit store.
For Dynamics GP it also looks for the other GP service on the same server (SBA REST, Web
Services SOAP) and, when that one reads entities the configured one cannot, prints the lines to
paste.
Nothing is posted and no watermark moves. Each line says what to do about a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from erp_slack.config import AppConfig, GpConnection
from erp_slack.connect import gp_client, gp_entities, syspro_client, syspro_entities
from erp_slack.errors import (
    EntityNotOffered,
    ErpSlackError,
    SlackRejected,
    SourceAccessDenied,
    SourceAuthFailed,
    SourceError,
    SourceUnreachable,
)
from erp_slack.model import Entity
from erp_slack.routing import Rule
from erp_slack.slack.gateway import SlackGateway
from erp_slack.sources.base import SourceClient
from erp_slack.store import Store, redact_url

__all__ = ["CheckResult", "run_checks", "format_table"]


@dataclass(frozen=True)
class CheckResult:
    system: str
    check: str
    ok: bool
    detail: str
    advice: str = ""


_SLACK_ADVICE = {
    "invalid_auth": "The bot token is wrong. Copy the Bot User OAuth Token (xoxb-…) from the Slack app page.",
    "token_revoked": "The token was revoked. Reinstall the Slack app and paste the new bot token.",
    "not_authed": "No token was sent. Set slack.token.",
    "account_inactive": "The bot user is deactivated. Reinstall the Slack app.",
    "channel_not_found": "No such channel, or a private channel the bot is not in. Check the name or invite the bot.",
    "is_archived": "The channel is archived. Unarchive it or route to another channel.",
}


def _source_checks(
    system: str, make: Callable[[], SourceClient], entities: Sequence[Entity], wanted: Sequence[str] | None
) -> list[CheckResult]:
    """Log on by reading one row of each entity; "log on OK" only once the server has let us in.

    A server that cannot be reached is one "connect" row with network advice, and the check
    stops there instead of failing every entity the same way.
    """
    reads: list[CheckResult] = []
    selected = [e for e in entities if not wanted or e.name in wanted]
    company = ""
    try:
        with make() as client:
            company = client.company
            for entity in selected:
                try:
                    pages = list(client.pages(entity, since=None, limit=1))
                except (SourceAuthFailed, SourceUnreachable):
                    raise
                except EntityNotOffered as exc:
                    reads.append(CheckResult(system, f"read {entity.name}", True,
                                             f"not offered by this server; skipped ({exc})"))
                    continue
                except SourceError as exc:
                    advice = exc.advice
                    if entity.cursor.kind == "rowversion" and entity.cursor.column in str(exc):
                        advice = (f"This server will not let queries read {entity.cursor.column}, which change "
                                  'capture relies on here: set transport = "odata" (dates with a lookback) or ask '
                                  "your SYSPRO partner to allow the column.")
                    reads.append(CheckResult(system, f"read {entity.name}", False, str(exc), advice))
                    continue
                rows = sum(len(p.rows) for p in pages)
                problems = [reason for p in pages for _, reason in p.problems]
                if problems and not rows:
                    # Rows came back but none can be used: change capture would see nothing.
                    reads.append(CheckResult(
                        system, f"read {entity.name}", False, f"{entity.table}: rows unusable: {problems[0]}",
                        f"The poller needs {entity.cursor.column} on every row of {entity.table}; check the "
                        "account can read that column (or pick the other transport)."))
                    continue
                detail = (f"{entity.table}: read 1 row, {entity.cursor.column} readable" if rows
                          else f"{entity.table}: table is empty")
                reads.append(CheckResult(system, f"read {entity.name}", True, detail))
        logoff = [CheckResult(system, "log off", True, "session released")]
    except SourceAuthFailed as exc:
        return [CheckResult(system, "log on", False, str(exc),
                            "Check the user name, password and company in the configuration.")]
    except SourceUnreachable as exc:
        return [CheckResult(system, "connect", False, str(exc), exc.advice)]
    except SourceError as exc:
        return [*reads, CheckResult(system, "connect", False, str(exc), exc.advice)]
    except ErpSlackError as exc:
        return [*reads, CheckResult(system, "connect", False, str(exc), "Check the configuration.")]
    return [CheckResult(system, "log on", True, f"company {company}"), *reads, *logoff]


# The port GP's Web Services listen on unless the site changed it.
_GP_WEBSERVICES_PORT = 48620


def _gp_candidates(cfg: GpConnection) -> list[tuple[str, str]]:
    """(transport, base_url) where a GP service may answer: the configured one first, then the
    other paths on the same server, then the Web Services' usual port on the same host."""
    parts = urlsplit(cfg.base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    found = [(cfg.transport, cfg.base_url.rstrip("/"))]
    for candidate in (("sba", f"{origin}/GPService"), ("webservices", f"{origin}/DynamicsGPWebServices"),
                      ("webservices", f"http://{parts.hostname}:{_GP_WEBSERVICES_PORT}/DynamicsGPWebServices")):
        if not any(t == candidate[0] and urlsplit(u).netloc == urlsplit(candidate[1]).netloc for t, u in found):
            found.append(candidate)
    return found


def _gp_discovery(cfg: GpConnection) -> list[CheckResult]:
    """Which GP services answer on this server and which entities each offers; when another one
    offers what the configured one does not (SBA without GL), the lines to paste to use it."""
    offers: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for transport, url in _gp_candidates(cfg):
        one = cfg.model_copy(update={"transport": transport, "base_url": url, "timeout": min(cfg.timeout, 10.0)})
        offered, missing = [], []
        try:
            with gp_client(one) as client:
                for entity in gp_entities(one):
                    try:
                        list(client.pages(entity, since=None, limit=1))
                        offered.append(entity.name)
                    except (EntityNotOffered, SourceAccessDenied):
                        missing.append(entity.name)
        except (SourceError, ErpSlackError):
            continue  # nothing (usable) answers there
        offers[(transport, url)] = (offered, missing)
    rows = [
        CheckResult("Dynamics GP", f"discover {transport}", True,
                    f"{url} answers; offers {', '.join(offered) or 'nothing'}"
                    + (f"; not {', '.join(missing)}" if missing else ""))
        for (transport, url), (offered, missing) in offers.items()
    ]
    mine = offers.get((cfg.transport, cfg.base_url.rstrip("/")))
    lacking = set(mine[1]) if mine else set(e.name for e in gp_entities(cfg))
    for (transport, url), (offered, _) in offers.items():
        gained = [name for name in offered if name in lacking]
        if transport != cfg.transport and gained:
            rows.append(CheckResult(
                "Dynamics GP", "suggestion", True, f"the {transport} transport also reads {', '.join(gained)}",
                f'To use it, set in [dynamics_gp]:\ntransport = "{transport}"\nbase_url = "{url}"'))
            break
    return rows


def _channels(routes: Iterable[Rule]) -> list[str]:
    seen: list[str] = []
    for rule in routes:
        if rule.channel and rule.channel not in seen:
            seen.append(rule.channel)
    return seen


def _slack_checks(gateway: SlackGateway, channels: Sequence[str]) -> list[CheckResult]:
    try:
        who = gateway.auth_test()
    except SlackRejected as exc:
        return [CheckResult("Slack", "auth.test", False, exc.code, _SLACK_ADVICE.get(exc.code, "Check slack.token."))]
    except ErpSlackError as exc:
        return [CheckResult("Slack", "auth.test", False, str(exc), "Check slack.base_url and the network.")]
    results = [CheckResult("Slack", "auth.test", True, f"bot {who.get('user', '?')} in {who.get('team', '?')}")]
    for channel in channels:
        what = f"post to {channel}"
        try:
            info = gateway.channel_info(gateway.resolve(channel))
        except SlackRejected as exc:
            results.append(CheckResult("Slack", what, False, exc.code, _SLACK_ADVICE.get(exc.code, "")))
            continue
        except ErpSlackError as exc:
            results.append(CheckResult("Slack", what, False, str(exc), "Try again; Slack did not answer."))
            continue
        if info.get("is_archived"):
            results.append(CheckResult("Slack", what, False, "is_archived", _SLACK_ADVICE["is_archived"]))
        elif info.get("is_member"):
            results.append(CheckResult("Slack", what, True, "bot is a member"))
            results.append(_history_check(gateway, channel, info))
        elif info.get("is_private"):
            results.append(CheckResult("Slack", what, False, "bot is not in this private channel",
                                       f"Invite the bot: /invite @{who.get('user', 'the bot')} in {channel}."))
        else:
            results.append(CheckResult("Slack", what, True, "public; the bot joins on its first post"))
    return results


_DELIVERY_WORDS = {"living": "one message per document, edited as it changes, a thread reply per change",
           "thread-only": "one message per document, a thread reply per change",
           "new-message": "a message per change"}


def _notify_rows(routes: Sequence[Rule]) -> list[CheckResult]:
    """How each routing rule's records reach Slack, and who it mentions: the only mentions any
    message can carry."""
    rows = []
    for i, rule in enumerate(routes):
        if rule.skip:
            continue
        how = (f"replies in {rule.archive}ly archive threads ({rule.archive_timezone})"
               + (", also shown in the channel" if rule.archive_in_channel else "")) if rule.archive \
            else _DELIVERY_WORDS[rule.message]
        if rule.urgent:
            how += "; urgent: sent even in quiet hours"
        rows.append(CheckResult("Slack", f"messages of {rule.label(i)}", True, f"{rule.channel}: {how}"))
        if rule.notify:
            kinds = {"users": [t for t in rule.notify if t[0] in "UW"],
                     "user groups": [t for t in rule.notify if t[0] == "S"],
                     "everyone in the channel": [t for t in rule.notify if t.startswith("@")]}
            who = "; ".join(f"{k} {', '.join(v)}" for k, v in kinds.items() if v)
            rows.append(CheckResult("Slack", f"mentions of {rule.label(i)}", True, f"{rule.channel}: {who}"))
    return rows


def _history_check(gateway: SlackGateway, channel: str, info: Mapping[str, Any]) -> CheckResult:
    """The bot must read a channel's history: after a post whose outcome is unknown (a timeout),
    that is how it finds out whether the message arrived instead of posting it twice."""
    what = f"read history of {channel}"
    try:
        gateway.read_history(info.get("id") or channel)
    except SlackRejected as exc:
        scope = "groups:history" if info.get("is_private") else "channels:history"
        return CheckResult("Slack", what, False, exc.code,
                           f"Add the {scope} scope to the Slack app and reinstall it: without it a post whose "
                           "outcome is unknown cannot be verified and ends as failed.")
    except ErpSlackError as exc:
        return CheckResult("Slack", what, False, str(exc), "Try again; Slack did not answer.")
    return CheckResult("Slack", what, True, "history readable")


def run_checks(config: AppConfig, routes: Sequence[Rule] | None = None) -> list[CheckResult]:
    """Every check the configuration calls for, in order. Posts nothing."""
    results: list[CheckResult] = []
    if config.syspro is not None and config.syspro.enabled:
        sp = config.syspro
        for name in sp.company_list():  # each company is a logon of its own
            one = sp.for_company(name)
            system = f"SYSPRO ({sp.transport})" + (f" {name}" if len(sp.company_list()) > 1 else "")
            results += _source_checks(system, lambda one=one: syspro_client(one), syspro_entities(one), sp.entities)
    if config.dynamics_gp is not None and config.dynamics_gp.enabled:
        gp = config.dynamics_gp
        for name in gp.company_list():
            one_gp = gp.for_company(name)
            system = "Dynamics GP" + (f" {name}" if len(gp.company_list()) > 1 else "")
            results += _source_checks(system, lambda one=one_gp: gp_client(one), gp_entities(one_gp), gp.entities)
        results += _gp_discovery(gp.for_company(gp.company_list()[0]))
    slack = config.slack
    gateway = SlackGateway(slack.token.get_secret_value(), base_url=slack.base_url)
    channels = _channels(routes if routes is not None else config.routes)
    for extra in [*(sm.channel for sm in slack.summaries), slack.ops_channel]:
        if extra and extra not in channels:
            channels.append(extra)
    results += _slack_checks(gateway, channels)
    results += _notify_rows(routes if routes is not None else config.routes)
    for sm in slack.summaries:
        days = "every day" if len(set(sm.days)) == 7 else ", ".join(d.title() for d in sm.days)
        results.append(CheckResult("Slack", f"summary {sm.title!r}", True,
                                   f"{sm.channel} at {', '.join(t.strftime('%H:%M') for t in sm.at)} {sm.timezone}, "
                                   f"{days}"))
    url = config.audit.url.get_secret_value()
    try:
        store = Store(url)
        counts = store.counts()
        store.dispose()
        results.append(CheckResult("Audit store", "open and migrate", True,
                                   f"{redact_url(url)}: {sum(counts.values())} deliveries recorded"))
    except Exception as exc:  # any driver error: report it with the URL's password hidden
        results.append(CheckResult("Audit store", "open and migrate", False,
                                   f"{redact_url(url)}: {type(exc).__name__}",
                                   "Check audit.url, that the database exists and the driver is installed."))
    return results


def format_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table: system, check, OK/FAILED, detail, advice."""
    from tabulate import tabulate

    rows = [(r.system, r.check, "OK" if r.ok else "FAILED", r.detail, r.advice) for r in results]
    return tabulate(rows, headers=["system", "check", "result", "detail", "what to do"], tablefmt="simple")
