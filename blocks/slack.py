"""The Slack bot block."""

from __future__ import annotations

from typing import Callable

from pydantic import Field, SecretStr
from prefect.blocks.core import Block

from erp_slack.slack.send import DrainSettings, SlackGateway


class SlackBot(Block):
    """The Slack bot that posts ERP notifications, and how fast it may post."""

    _block_type_name = "ERP Slack Bot"
    _block_type_slug = "erp-slack-bot"
    _logo_url = None
    _description = "Slack bot token and posting limits for erp-slack-flows."

    token: SecretStr = Field(description="Bot token (xoxb-…) with chat:write, channels:join and channels:history.")
    base_url: str | None = Field(
        default=None, description="Web API base URL; leave empty for Slack itself (set for the simulator)."
    )
    ops_channel: str | None = Field(
        default=None, description="Channel for operational alerts: failed runs and authentication failures."
    )
    rate_per_channel: float = Field(default=1.0, description="Messages per second per channel (Slack allows about 1).")
    workspace_per_minute: float = Field(default=300.0, description="Messages per minute across the workspace.")
    digest_threshold: int = Field(
        default=5, description="A channel with more pending records than this gets digest messages."
    )
    digest_max: int = Field(default=20, description="Records per digest message (at most 25).")
    time_scale: float = Field(default=1.0, description="Simulators only: run every rate this many times faster.")
    shared_rate_limits: bool = Field(
        default=False,
        description="Pace channels through Prefect global concurrency limits, for workers on several hosts.",
    )

    def get_client(self) -> SlackGateway:
        """The core Slack gateway for this bot."""
        return SlackGateway(self.token.get_secret_value(), base_url=self.base_url)

    def drain_settings(self) -> DrainSettings:
        """The sender's pacing settings."""
        return DrainSettings(
            rate_per_channel=self.rate_per_channel, workspace_per_minute=self.workspace_per_minute,
            digest_threshold=self.digest_threshold, digest_max=self.digest_max, time_scale=self.time_scale,
        )

    def pacer(self) -> Callable[[str], None] | None:
        """With shared limits, a hook that takes one slot of the channel's global limit per post."""
        if not self.shared_rate_limits:
            return None
        from prefect.concurrency.sync import rate_limit

        def pace(channel: str) -> None:
            # A channel without its limit (added to the routes after `erp-slack up`) is paced
            # locally only; every routed channel gets one at `up`.
            rate_limit(gcl_name(channel), strict=False)

        return pace


def gcl_name(channel: str) -> str:
    """The global concurrency limit that paces one Slack channel across workers."""
    return "slack-channel-" + channel.lstrip("#").lower()
