"""``erp-slack up``: one-machine production in one command.

1. Keep the block encryption key outside Prefect's database (a file in ~/.config/erp-slack).
2. Start a local Prefect server on SQLite unless one answers at PREFECT_API_URL.
3. Create the ``erp-slack`` process work pool, register the blocks, apply the configuration.
4. Deploy everything in prefect.yaml and start a worker (in the foreground).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from blocks.slack import gcl_name

__all__ = ["up", "ensure_server", "encryption_key", "POOL"]

POOL = "erp-slack"


def encryption_key(path: Path | None = None) -> str:
    """The Fernet key for block data, created once with owner-only permissions.

    Without it the server would generate a key and keep it in the same database as the data it
    protects (reference/prefect.md §2).
    """
    if os.environ.get("PREFECT_SERVER_ENCRYPTION_KEY"):
        return os.environ["PREFECT_SERVER_ENCRYPTION_KEY"]
    from cryptography.fernet import Fernet

    path = path or Path.home() / ".config" / "erp-slack" / "fernet.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(api_url.rstrip("/") + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _prefect() -> str:
    exe = shutil.which("prefect", path=os.path.dirname(sys.executable)) or shutil.which("prefect")
    if not exe:
        raise SystemExit("the prefect command is not installed in this environment")
    return exe


def ensure_server(port: int, log: Path, *, timeout: float = 180.0) -> str:
    """A reachable Prefect API URL: the configured one, or a local server started now."""
    api = os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{port}/api"
    if _healthy(api):
        return api
    env = dict(os.environ, PREFECT_SERVER_ENCRYPTION_KEY=encryption_key(), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Its own session: the server outlives this command and keeps running for the worker.
        subprocess.Popen([_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                         stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(api):
            return api
        time.sleep(1)
    raise SystemExit(f"the Prefect server did not start within {timeout:.0f} s; see {log}")


def _run(*argv: str, cwd: Path | None = None, ok_if: str | None = None) -> None:
    res = subprocess.run([_prefect(), *argv], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0 and not (ok_if and ok_if in (res.stdout + res.stderr)):
        raise SystemExit(f"prefect {' '.join(argv)} failed:\n{res.stdout}{res.stderr}")


def up(args: argparse.Namespace) -> int:
    project = Path(args.project_dir).resolve()
    if not (project / "prefect.yaml").exists():
        raise SystemExit(f"no prefect.yaml in {project}; run from the project folder or give --project-dir")
    port = int(getattr(args, "port", 4200) or 4200)
    api = ensure_server(port, project / ".erp-slack" / "prefect-server.log")
    os.environ["PREFECT_API_URL"] = api
    print(f"Prefect API: {api}  (UI: {api.removesuffix('/api')})")
    _run("work-pool", "create", POOL, "--type", "process", ok_if="already exists")
    print(f"Work pool: {POOL}")
    _run("block", "register", "-m", "blocks")
    print("Blocks registered")
    cfg = None
    if args.config:
        from cli.apply import save_blocks
        from erp_slack.config import load_config

        cfg = load_config(args.config)
        for line in save_blocks(cfg):
            print(line)
    _run("--no-prompt", "deploy", "--all", cwd=project)
    print("Deployed everything in prefect.yaml")
    if cfg is not None:
        from cli.apply import update_deployments
        from flows.pipeline import source_lock_name

        for line in update_deployments(cfg):
            print(line)
        for source, company in (("syspro", cfg.syspro and cfg.syspro.company_id),
                                ("gp", cfg.dynamics_gp and cfg.dynamics_gp.company)):
            if company:
                _run("global-concurrency-limit", "create", source_lock_name(source, company), "--limit", "1",
                     ok_if="already exists")
        print("Runs of one source never overlap (scheduled runs and backfills share one slot)")
        if cfg.slack.shared_rate_limits:
            from erp_slack.routing import DEFAULT_ROUTES

            rate = cfg.slack.rate_per_channel
            channels = {r.channel for r in cfg.routes or DEFAULT_ROUTES if r.channel} | {cfg.slack.ops_channel or ""}
            for channel in sorted(c for c in channels if c):
                _run("global-concurrency-limit", "create", gcl_name(channel), "--limit", "1",
                     "--slot-decay-per-second", str(rate), ok_if="already exists")
            print("Global concurrency limits created: workers on every host share Slack's per-channel rate")
    if args.no_worker:
        print(f"Start a worker with: PREFECT_API_URL={api} prefect worker start --pool {POOL}")
        return 0
    print("Starting the worker (Ctrl-C stops it; the server keeps running: `prefect server stop`).")
    os.execv(_prefect(), [_prefect(), "worker", "start", "--pool", POOL])
    return 0  # not reached

