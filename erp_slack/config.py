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
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from erp_slack.errors import ConfigError
from erp_slack.routing import Rule

__all__ = [
    "AppConfig",
    "SysproConfig",
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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?|d|days?)\s*$", re.I)
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"10m"``, ``"6h"``, ``"30d"`` (also ``"30 days"``) as a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; write it like \"10m\", \"6h\" or \"30d\"")
    return timedelta(**{_UNIT[m[2][0].lower()]: float(m[1])})


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


class _SourceConfig(_Model):
    """What every source section has: where it is, TLS, timeouts, which entities, first run."""

    SOURCE: ClassVar[str]

    enabled: bool = True
    base_url: str
    verify: bool | str = True
    timeout: float = Field(default=30.0, gt=0)
    entities: list[str] | None = None
    first_run: Literal["baseline", "post"] = "baseline"
    lookback: timedelta | None = None

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return _url(v)

    @field_validator("entities")
    @classmethod
    def _entities(cls, v: list[str] | None) -> list[str] | None:
        return _check_entities(v, cls.SOURCE)


class SysproConfig(_SourceConfig):
    """Where SYSPRO is and how to log on."""

    SOURCE: ClassVar[str] = "syspro"

    transport: Literal["enet", "odata"] = "enet"
    operator: str
    operator_password: SecretStr = SecretStr("")
    company_id: str
    company_password: SecretStr = SecretStr("")
    odata_password: SecretStr = SecretStr("")
    page_size: int = Field(default=500, ge=1, le=5000)
    interval_minutes: int = Field(default=5, ge=5, le=15)

    @model_validator(mode="after")
    def _password_for_transport(self) -> "SysproConfig":
        if self.transport == "odata" and not self.odata_password.get_secret_value():
            raise ValueError("odata_password is required when transport = 'odata'")
        if self.transport == "enet" and not self.operator_password.get_secret_value():
            raise ValueError("operator_password is required when transport = 'enet'")
        return self


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


class GpConfig(_SourceConfig):
    """Where Dynamics GP's Service Based Architecture is and the Windows account to use."""

    SOURCE: ClassVar[str] = "gp"

    tenant: str = "DefaultTenant"
    company: str
    username: str
    password: SecretStr
    include_unposted: bool = False
    schedule: ScheduleConfig = ScheduleConfig()

    @field_validator("username")
    @classmethod
    def _domain_user(cls, v: str) -> str:
        if "\\" not in v and "@" not in v:
            raise ValueError("must be a Windows account like 'DOMAIN\\user' or 'user@domain'")
        return v


class SlackConfig(_Model):
    """The Slack bot and how fast to post."""

    token: SecretStr
    base_url: str | None = None
    ops_channel: str | None = None
    rate_per_channel: float = Field(default=1.0, gt=0, le=10)
    workspace_per_minute: float = Field(default=300, gt=0, le=3000)
    digest_threshold: int = Field(default=5, ge=1)
    digest_max: int = Field(default=20, ge=1, le=25)
    time_scale: float = Field(default=1.0, gt=0, description="simulators only: run every rate this many times faster")
    shared_rate_limits: bool = False

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
    """The audit store (any SQLAlchemy URL; SQLite file by default)."""

    url: SecretStr = SecretStr("sqlite:///erp-slack.db")

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
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling against erp-slack.example.toml)"
        raise ConfigError(path, msg) from None


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
