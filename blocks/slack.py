"""The Slack bot block: the core's Slack settings, saved in Prefect."""

from __future__ import annotations

from typing import Callable

from prefect.blocks.core import Block
from pydantic import ConfigDict

from erp_slack.config import SlackConfig
from erp_slack.slack.gateway import SlackGateway
from erp_slack.slack.send import DrainSettings


class SlackBot(Block, SlackConfig):
    """The Slack bot that posts ERP notifications, and how fast it may post."""

    model_config = ConfigDict(extra="allow", frozen=False)
    _block_type_name = "ERP Slack Bot"
    _block_type_slug = "erp-slack-bot"
    _logo_url = None
    _description = "Slack bot token and posting limits for erp-slack-flows."

    def get_client(self) -> SlackGateway:
        """The core Slack gateway for this bot."""
        return SlackGateway(self.token.get_secret_value(), base_url=self.base_url)

    def drain_settings(self) -> DrainSettings:
        """The sender's pacing settings."""
        return DrainSettings(
            rate_per_channel=self.rate_per_channel, workspace_per_minute=self.workspace_per_minute,
            digest_threshold=self.digest_threshold, digest_max=self.digest_max, time_scale=self.time_scale,
            lease=self.claim_lease, channel_burst=self.channel_burst,
            quiet=tuple(q.to_core() for q in self.quiet_hours), currency_codes=dict(self.currency_codes),
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
