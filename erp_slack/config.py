"""The configuration file: one TOML document describing the systems and the routing.

``load_config(path)`` validates it with pydantic (unknown keys are errors) and raises
``ConfigError`` naming the field's path, e.g. ``syspro.base_url: must start with http:// or
https://``. Secrets may be written as ``env:VAR`` to read them from the environment; their
values are never echoed in errors, reprs or summaries.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from erp_slack.errors import ConfigError
from erp_slack.routing import Rule
from erp_slack.slack.quiet import QuietHours
from erp_slack.slack.summary import WEEKDAYS, Summary

__all__ = [
    "AppConfig",
    "SysproConnection",
    "SysproConfig",
    "GpConnection",
    "GpConfig",
    "SlackConfig",
    "AuditConfig",
    "ScheduleConfig",
    "load_config",
    "parse_config",
    "resolve_secret",
    "parse_duration",
]


def resolve_secret(value: str, path: str) -> str:
    """``env:VAR`` → the variable's value; anything else as written."""
    if value.startswith("env:"):
        name = value[4:]
        if not name:
            raise ConfigError(path, "env: needs a variable name, e.g. env:SLACK_BOT_TOKEN")
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(path, f"environment variable {name} is not set")
        return found
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @classmethod
    def of(cls, other: BaseModel) -> Self:
        """This model built from the same-named settings of another (a config section from a
        block, a block from a config section)."""
        theirs = type(other).model_fields
        return cls.model_validate({k: getattr(other, k) for k in cls.model_fields if k in theirs})


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?|d|days?)\s*$", re.I)
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"10m"``, ``"6h"``, ``"30d"`` (also ``"30 days"``) as a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; write it like \"10m\", \"6h\" or \"30d\"")
    return timedelta(**{_UNIT[m[2][0].lower()]: float(m[1])})


def _as_duration(v: Any) -> Any:
    """A duration as people write it ("10m", "6h", "30d"); anything else as pydantic reads it (an
    ISO 8601 ``PT2M`` as a saved block holds it, seconds), with its error if it is neither."""
    if isinstance(v, str) and not v.strip().upper().startswith("P") and not v.strip().replace(".", "", 1).isdigit():
        return parse_duration(v)
    return v


def _url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return v.rstrip("/")


def _known_entities(source: str) -> set[str]:
    from erp_slack.sources import all_entities

    return {name for (src, name) in all_entities() if src == source or source == "*"}


def _check_entities(names: list[str] | None, source: str) -> list[str] | None:
    if names:
        unknown = sorted(set(names) - _known_entities(source))
        if unknown:
            raise ValueError(f"unknown entities {unknown}; known: {sorted(_known_entities(source))}")
    return names


class _Connection(_Model):
    """Where a source is and how to reach it: the settings a credentials block holds too.

    The blocks in ``blocks/`` inherit these models, so each setting, its default, its check and
    its description are written once, here.
    """

    SOURCE: ClassVar[str]
    COMPANY_FIELD: ClassVar[str]  # the field that names the one company a client logs on to

    base_url: str = Field(description="Server URL, e.g. https://erp.example.local:20190.")
    verify: bool | str = Field(
        default=True, description="True to verify TLS with the system CAs, or the path of a CA bundle file."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for one reply.")
    lookback: timedelta | None = Field(
        default=None, description="Re-read at least this far behind the watermark on every poll (default: each "
        "entity's own). Widen it when documents are entered back-dated or late.",
    )

    companies: list[str] = Field(
        default_factory=list,
        description="Every company to poll, in turn, in one run (default: only the one named above). "
                    "One company's failure never stops the others.",
    )

    company_names: dict[str, str] = Field(
        default_factory=dict,
        description="What Slack calls each company, e.g. { EDU1 = \"Acme Outdoors\" }: messages read "
                    "'company Acme Outdoors (EDU1)'. Default: the company as configured.",
    )

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return _as_duration(v)

    @model_validator(mode="after")
    def _named_companies(self) -> Self:
        unknown = [c for c in self.company_names if c not in self.company_list()]
        if unknown:
            raise ValueError(f"company_names names {', '.join(map(repr, unknown))}, which this section does not "
                             f"poll (companies: {', '.join(self.company_list())})")
        return self

    @model_validator(mode="before")
    @classmethod
    def _first_company(cls, data: Any) -> Any:
        # `companies = ["EDU1", "EDU2"]` alone is enough: the first is the one named.
        if isinstance(data, dict) and data.get("companies") and not data.get(cls.COMPANY_FIELD):
            data = {**data, cls.COMPANY_FIELD: data["companies"][0]}
        return data

    @field_validator("companies")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        seen = [c.strip() for c in v]
        if any(not c for c in seen) or len({c.upper() for c in seen}) != len(seen):
            raise ValueError("companies must be distinct, non-empty names")
        return seen

    def company_list(self) -> list[str]:
        """The companies a run polls, in order."""
        return list(self.companies) or [getattr(self, self.COMPANY_FIELD)]

    def for_company(self, company: str) -> Self:
        """These settings for one of the companies (the one a client logs on to)."""
        if company not in self.company_list():
            raise ValueError(f"unknown company {company!r}; this source has {', '.join(self.company_list())}")
        return self.model_copy(update={self.COMPANY_FIELD: company})

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return _url(v)


class _SourceOptions(_Model):
    """What a source section says beyond its connection: whether it runs, which entities, what
    the first run does, and how long each entity normally goes without news."""

    SOURCE: ClassVar[str]

    enabled: bool = True
    entities: list[str] | None = None
    first_run: Literal["baseline", "post"] = "baseline"
    silence_after: dict[str, timedelta] = Field(default_factory=dict)
    late_after: timedelta | None = Field(
        default=None, ge=timedelta(seconds=10),
        description="Tell the ops channel when no scheduled run of this source has completed for this "
                    "long (the worker is down, runs keep failing); default three schedule intervals, "
                    "26 hours for a daily run. Checked by the Prefect server itself.",
    )

    @field_validator("late_after", mode="before")
    @classmethod
    def _late_after(cls, v: Any) -> Any:
        return _as_duration(v)

    @field_validator("entities")
    @classmethod
    def _entities(cls, v: list[str] | None) -> list[str] | None:
        return _check_entities(v, cls.SOURCE)

    @field_validator("silence_after", mode="before")
    @classmethod
    def _silences(cls, v: Any) -> Any:
        if isinstance(v, dict):
            _check_entities(list(v), cls.SOURCE)
            return {k: _as_duration(d) for k, d in v.items()}
        return v


class SysproConnection(_Connection):
    """Where SYSPRO is and how to log on (e.net Solutions REST or OData)."""

    SOURCE: ClassVar[str] = "syspro"
    COMPANY_FIELD: ClassVar[str] = "company_id"

    transport: Literal["enet", "odata"] = Field(
        default="enet", description="Which SYSPRO API to use: e.net Solutions REST or OData (SYSPRO 8 2021 R2+)."
    )
    operator: str = Field(description="SYSPRO operator code used to log on.")
    operator_password: SecretStr = Field(default=SecretStr(""), description="Operator password (e.net).")
    company_id: str = Field(description="SYSPRO company ID, e.g. EDU1.")
    company_password: SecretStr = Field(default=SecretStr(""), description="Company password, if the company has one.")
    odata_password: SecretStr = Field(default=SecretStr(""), description="The operator's OData password (OData).")
    page_size: int = Field(default=500, ge=1, le=5000, description="Rows per request (OData caps replies at 5,000).")

    @property
    def company_name(self) -> str:
        return self.company_id

    @model_validator(mode="after")
    def _password_for_transport(self) -> Self:
        if self.transport == "odata" and not self.odata_password.get_secret_value():
            raise ValueError("odata_password is required when transport = 'odata'")
        if self.transport == "enet" and not self.operator_password.get_secret_value():
            raise ValueError("operator_password is required when transport = 'enet'")
        return self


class SysproConfig(SysproConnection, _SourceOptions):
    """The ``[syspro]`` section: the connection, and how often to poll."""

    interval_minutes: int = Field(default=5, ge=5, le=15)


class ScheduleConfig(_Model):
    """A daily run at a local time."""

    at: time = time(6, 0)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like 'America/Chicago')") from None
        return v


class GpConnection(_Connection):
    """Where Dynamics GP's web service is (Service Based Architecture REST, or Web Services
    SOAP) and the Windows account that reads it."""

    SOURCE: ClassVar[str] = "gp"
    COMPANY_FIELD: ClassVar[str] = "company"

    transport: Literal["sba", "webservices"] = Field(
        default="sba",
        description="Which GP service to read: 'sba' (Service Based Architecture REST, base_url "
                    "https://host:443/GPService) or 'webservices' (Web Services for Microsoft Dynamics GP, "
                    "legacy endpoint, base_url http://host:48620/DynamicsGPWebServices).",
    )
    tenant: str = Field(default="DefaultTenant", description="GP tenant name (SBA).")
    company: str = Field(description="GP company name as GP shows it, e.g. Fabrikam, Inc. (Web Services also "
                                     "take the numeric company id).")
    username: str = Field(description="Windows account, DOMAIN\\user or user@domain.")
    password: SecretStr = Field(description="Password of the Windows account.")
    include_unposted: bool = Field(
        default=False, description="Also notify unposted (work) documents: payables, receipts, GL journal entries.")

    @property
    def company_name(self) -> str:
        return self.company

    @field_validator("username")
    @classmethod
    def _domain_user(cls, v: str) -> str:
        if "\\" not in v and "@" not in v:
            raise ValueError("must be a Windows account like 'DOMAIN\\user' or 'user@domain'")
        return v


class GpConfig(GpConnection, _SourceOptions):
    """The ``[dynamics_gp]`` section: the connection, and when the daily run starts."""

    schedule: ScheduleConfig = ScheduleConfig()


class QuietHoursConfig(_Model):
    """One ``[[slack.quiet_hours]]`` window: when some channels are not to be pinged."""

    channels: list[str] = Field(min_length=1, description="Channels it applies to, e.g. ['#ap-invoices'].")
    start: time = Field(default=time(19, 0), description="Daily quiet time starts (local), e.g. 19:00.")
    end: time = Field(default=time(7, 0), description="Daily quiet time ends (local), e.g. 07:00; the same as "
                                                      "start for no daily window.")
    weekends: bool = Field(default=False, description="Saturday and Sunday are quiet all day.")
    timezone: str = Field(default="UTC", description="IANA time zone of start, end and the weekend.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return ScheduleConfig._tz(v)

    @model_validator(mode="after")
    def _some_quiet(self) -> Self:
        if self.start == self.end and not self.weekends:
            raise ValueError("start equals end and weekends is false: this window is never quiet")
        return self

    def to_core(self) -> QuietHours:
        return QuietHours(frozenset(self.channels), self.start, self.end, self.weekends, self.timezone)


class SummaryConfig(_Model):
    """One ``[[slack.summaries]]`` entry: a message at set times of day listing the documents in
    a state ("Invoices awaiting approval" at 09:00), as well as (or, with a ``skip`` route for
    those documents, instead of) their own messages."""

    title: str = Field(min_length=1, max_length=100, description="What Slack calls it, e.g. 'Invoices awaiting "
                                                                    "approval'.")
    channel: str = Field(description="Where it is posted, e.g. '#ap-approvals'.")
    at: list[time] = Field(min_length=1, description="Times of day it is posted (local), e.g. ['09:00'].")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], min_length=1,
        description="Days it is posted on, e.g. ['mon', 'tue', 'wed', 'thu', 'fri'].")
    timezone: str = Field(default="UTC", description="IANA time zone of at and days.")
    entity: str | list[str] = Field(default="*", description="Entities it lists (ap_invoice, purchase_order…).")
    source: str = Field(default="*", description="'syspro', 'gp' or '*'.")
    company: str = Field(default="*", description="Only this company's documents, or '*'.")
    statuses: list[str] | None = Field(default=None, description="Only documents now in these statuses "
                                                                  "(as shown, e.g. 'Awaiting approval').")
    min_amount: Decimal | None = Field(default=None, description="Only documents of at least this amount.")
    max_amount: Decimal | None = Field(default=None, description="Only documents below this amount.")
    suppliers: list[str] | None = Field(default=None, description="Only these suppliers' (vendors') documents.")
    exclude_suppliers: list[str] = Field(default_factory=list, description="Never these suppliers' documents.")
    where: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Only documents whose fields now read one of these values (as shown), e.g. "
                    "{ approval = ['Pending Approval'] } or { hold = ['Yes'] }.")
    post_empty: bool = Field(default=True, description="Post 'nothing to show' when no document matches.")
    limit: int = Field(default=20, ge=1, le=25, description="Documents listed by name (the rest are counted).")

    _zone = field_validator("timezone")(lambda cls, v: ScheduleConfig._tz(v))
    _entity = field_validator("entity")(lambda cls, v: Rule._known_entity(v))
    _source = field_validator("source")(lambda cls, v: Rule._known_source(v))

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        return Rule._channel_shape(v) or v

    @model_validator(mode="after")
    def _amounts(self) -> Self:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise ValueError("min_amount is above max_amount")
        from erp_slack.sources import all_entities

        names = (self.entity,) if isinstance(self.entity, str) else tuple(self.entity)
        known = {f for (src, name), e in all_entities().items()
                 if self.source in ("*", src) and ("*" in names or name in names) for f in e.fields}
        unknown = sorted(set(self.where) - known)
        if unknown:
            raise ValueError(f"where names fields {unknown} that these entities do not have; they have "
                             f"{sorted(known)}")
        return self

    def to_core(self) -> Summary:
        match = Rule(entity=self.entity, source=self.source, company=self.company, channel=self.channel,
                     statuses=self.statuses, min_amount=self.min_amount, max_amount=self.max_amount,
                     suppliers=self.suppliers, exclude_suppliers=self.exclude_suppliers, name=self.title)
        return Summary(self.title, self.channel, tuple(sorted(set(self.at))), match, self.timezone,
                       tuple(sorted(WEEKDAYS.index(d) for d in set(self.days))), self.post_empty, self.limit,
                       tuple((k, tuple(v)) for k, v in sorted(self.where.items())))


class SlackConfig(_Model):
    """The Slack bot and how fast it may post (the Slack block holds the same settings)."""

    token: SecretStr = Field(description="Bot token (xoxb-…) with chat:write, channels:join and channels:history.")
    base_url: str | None = Field(
        default=None, description="Web API base URL; leave empty for Slack itself (set for the simulator)."
    )
    ops_channel: str | None = Field(
        default=None, description="Channel for operational alerts: failed runs and authentication failures."
    )
    rate_per_channel: float = Field(
        default=1.0, gt=0, le=10, description="Messages per second per channel (Slack allows about 1)."
    )
    workspace_per_minute: float = Field(
        default=300, gt=0, le=3000, description="Messages per minute across the workspace."
    )
    digest_threshold: int = Field(
        default=5, ge=1, description="A channel with more pending records than this gets digest messages."
    )
    digest_max: int = Field(default=20, ge=1, le=25, description="Records per digest message (at most 25).")
    channel_burst: int = Field(
        default=2, ge=1, le=5,
        description="Posts a channel may take at once to catch up after a pause (Slack allows short bursts; "
                    "1 keeps strictly to the rate).",
    )
    time_scale: float = Field(default=1.0, gt=0, description="Simulators only: run every rate this many times faster.")
    shared_rate_limits: bool = Field(
        default=False,
        description="Pace channels through Prefect global concurrency limits, for workers on several hosts.",
    )
    max_waiting: timedelta | None = Field(
        default=timedelta(hours=1),
        description="Tell the ops channel when a record has waited this long for Slack (empty: never).",
    )
    quiet_hours: list[QuietHoursConfig] = Field(
        default_factory=list,
        description="Quiet hours per channel: records are held (never dropped) and go out as one digest when "
                    "the window ends; urgent routes (urgent = true) go out at once.",
    )
    currency_codes: dict[str, str] = Field(
        default_factory=dict,
        description="ERP currency ids and the ISO code messages show for them, e.g. { \"Z-US$\" = \"USD\" } "
                    "for Dynamics GP's sample ids; amounts then read 'USD 2,500.00'. GP's own currency setup is "
                    "read where it can be (SBA); these win where both name a currency. The audit trail keeps the "
                    "ERP's id.",
    )
    summaries: list[SummaryConfig] = Field(
        default_factory=list,
        description="Scheduled summaries: at set times of day, one message per summary listing the documents "
                    "in a state, with counts and totals (posted by the summaries deployment).",
    )
    claim_lease: timedelta = Field(
        default=timedelta(minutes=2), gt=timedelta(0),
        description="How long a batch may stay 'sending' under one drainer's claim before another checks "
                    "Slack for it and takes it over (a crashed worker's batch). Longer than any one post.",
    )

    @field_validator("claim_lease", "max_waiting", mode="before")
    @classmethod
    def _lease_duration(cls, v: Any) -> Any:
        return _as_duration(v)

    @field_validator("summaries")
    @classmethod
    def _one_title_per_channel(cls, v: list[SummaryConfig]) -> list[SummaryConfig]:
        seen = set()
        for s in v:
            if (s.channel, s.title) in seen:
                raise ValueError(f"two summaries called {s.title!r} post to {s.channel}: give each its own title")
            seen.add((s.channel, s.title))
        return v

    @field_validator("currency_codes")
    @classmethod
    def _iso_codes(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(code for code in v.values() if not re.fullmatch(r"[A-Z]{3}", code))
        if bad:
            raise ValueError(f"{bad} are not ISO 4217 codes (three capital letters, e.g. USD)")
        return v

    @field_validator("token")
    @classmethod
    def _bot_token(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("xoxb-", "xoxp-")):
            raise ValueError("must be a Slack bot token starting with xoxb-")
        return v

    @field_validator("base_url")
    @classmethod
    def _api_url(cls, v: str | None) -> str | None:
        return None if v is None else _url(v) + "/"


class AuditConfig(_Model):
    """The audit store: outbox, watermarks and audit trail (any SQLAlchemy URL; a SQLite file for
    one machine, PostgreSQL when several workers share it)."""

    url: SecretStr = Field(
        default=SecretStr("sqlite:///erp-slack.db"),
        description="SQLAlchemy URL of the audit database (it may hold a password, so it is kept secret).",
    )

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, v: SecretStr) -> SecretStr:
        from sqlalchemy.engine import make_url

        try:
            make_url(v.get_secret_value())
        except Exception:
            raise ValueError("is not a database URL (e.g. sqlite:///erp-slack.db or postgresql://host/db)") from None
        return v


class AppConfig(_Model):
    """The whole file."""

    syspro: SysproConfig | None = None
    dynamics_gp: GpConfig | None = None
    slack: SlackConfig
    audit: AuditConfig = AuditConfig()
    routes: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_watch(self) -> "AppConfig":
        if self.syspro is None and self.dynamics_gp is None:
            raise ValueError("configure at least one source: [syspro] or [dynamics_gp]")
        return self


_SECRET_PATHS = (
    ("syspro", "operator_password"), ("syspro", "company_password"), ("syspro", "odata_password"),
    ("dynamics_gp", "password"), ("slack", "token"), ("audit", "url"),
)


def parse_config(data: dict[str, Any]) -> AppConfig:
    """Validate a parsed document; ``env:`` secrets are resolved first."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, key in _SECRET_PATHS:
        sect = data.get(section)
        if isinstance(sect, dict) and isinstance(sect.get(key), str):
            sect[key] = resolve_secret(sect[key], f"{section}.{key}")
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling against erp-slack.example.toml)"
        raise ConfigError(path, msg) from None
    _check_route_companies(cfg)
    return cfg


def _check_route_companies(cfg: AppConfig) -> None:
    """A route for a company no source section names would never match: say so at load."""
    sections = {"syspro": cfg.syspro, "gp": cfg.dynamics_gp}
    for i, rule in enumerate(cfg.routes):
        if rule.company == "*":
            continue
        known = [c for src, sect in sections.items() if sect is not None and rule.source in ("*", src)
                 for c in sect.company_list()]
        if rule.company not in known:
            raise ConfigError(f"routes.{i}.company", f"unknown company {rule.company!r}; the configuration's "
                              f"companies are {', '.join(known) or 'none'}")


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a TOML configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError("", f"cannot read {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from None
    return _anchor_paths(parse_config(data), p.resolve().parent)


def _anchor_paths(cfg: AppConfig, base: Path) -> AppConfig:
    """Relative file paths in the file mean "next to the file", wherever the command runs
    (a worker's working directory is not the admin's)."""
    from sqlalchemy.engine import make_url

    updates: dict[str, Any] = {}
    url = make_url(cfg.audit.url.get_secret_value())
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:" and not Path(url.database).is_absolute():
        absolute = url.set(database=str(base / url.database)).render_as_string(hide_password=False)
        updates["audit"] = cfg.audit.model_copy(update={"url": SecretStr(absolute)})
    for name in ("syspro", "dynamics_gp"):
        section = getattr(cfg, name)
        if section is not None and isinstance(section.verify, str) and not Path(section.verify).is_absolute():
            updates[name] = section.model_copy(update={"verify": str(base / section.verify)})
    return cfg.model_copy(update=updates) if updates else cfg
