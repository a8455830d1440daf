"""Block standards, checked offline (after Prefect's BlockStandardTestSuite), and the layering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import ALL_BLOCKS


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.__name__)
def test_block_standards(block):
    assert block.__doc__ and block.__doc__.strip().endswith(".")
    assert block._block_type_name and block._block_type_slug.startswith("erp-slack-")
    assert block._description and block._description.endswith(".")
    for name, field in block.model_fields.items():
        assert field.description and field.description.endswith("."), f"{block.__name__}.{name} needs a description"
        secretish = any(w in name for w in ("password", "token", "secret")) or name == "url" and block.__name__ == "AuditDatabase"
        if secretish:
            assert SecretStr in getattr(field.annotation, "__args__", (field.annotation,)), f"{name} must be SecretStr"


def test_block_secrets_are_masked_in_repr_and_schema():
    from blocks import DynamicsGpCredentials, SlackBot

    gp = DynamicsGpCredentials(base_url="https://gp", company="C", username="D\\u", password="p4ss-word-xyz")
    bot = SlackBot(token="xoxb-secret-123")
    assert "p4ss-word-xyz" not in repr(gp) and "xoxb-secret-123" not in repr(bot)
    assert "password" in DynamicsGpCredentials.model_json_schema()["secret_fields"]
    assert "token" in SlackBot.model_json_schema()["secret_fields"]


def test_import_layering_contracts_hold():
    # cli → flows → tasks → blocks → core; the core (and its run cycle) never imports prefect;
    # the product never imports the simulators and they import nothing from it; the cli modules
    # have no import loop (pyproject.toml [tool.importlinter]). In a subprocess: the linter
    # reconfigures logging, which would silence loggers for the rest of the test session.
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 kept, 0 broken" in out.stdout
    for contract in ("the run cycle imports no prefect", "the product never imports the simulators",
                     "cli modules import each other without a loop"):
        assert f"{contract}" in out.stdout
