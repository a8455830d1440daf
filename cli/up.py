"""``erp-slack up`` and ``erp-slack down``: one-machine production, started and stopped.

``up``:
1. keeps the block encryption key outside Prefect's database (``~/.config/erp-slack/fernet.key``);
2. starts a local Prefect server with that key unless one answers at the API URL;
3. writes and activates the Prefect profile ``erp-slack``, so every later ``prefect`` or
   ``erp-slack`` command in any shell reaches the same server;
4. creates the ``erp-slack`` process work pool, registers and saves the blocks, deploys
   ``prefect.yaml`` with the configuration's routes and schedules, creates the concurrency limits;
5. starts one worker and watches it in the foreground (Ctrl-C or SIGTERM stops the worker and
   the server it started), or leaves both running with ``--detach``.

Prefect reads its settings once, when it is first imported, so nothing here imports Prefect
before the API URL and the key are in the environment: a block saved through a temporary
in-process server would be encrypted with a key the real server does not have.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["up", "down", "prepare_prefect", "encryption_key", "POOL", "PROFILE", "Installation"]

POOL = "erp-slack"
PROFILE = "erp-slack"
_STOP_WAIT = 15.0  # seconds a process gets to stop on SIGTERM before it is killed


@dataclass(frozen=True)
class Installation:
    """Where ``up`` keeps what it needs between commands: the key, process ids and logs."""

    root: Path

    @classmethod
    def here(cls) -> "Installation":
        return cls(Path.home() / ".config" / "erp-slack")

    @property
    def key_file(self) -> Path:
        return self.root / "fernet.key"

    def pid_file(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def running(self, name: str) -> int | None:
        """The recorded process id of ``name`` if that process is still alive."""
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return None  # another user's process: not one this installation started
        return pid if _is_prefect(pid) else None  # a recycled pid after a reboot is not ours

    def record(self, name: str, pid: int) -> None:
        path = self.pid_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{pid}\n")

    def forget(self, name: str) -> None:
        self.pid_file(name).unlink(missing_ok=True)


def _is_prefect(pid: int) -> bool:
    """Whether ``pid`` runs the prefect command (where the system can tell; else trust the file)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    # Just after the fork the child still shows this command's own line (erp-slack), and while it
    # execs, none at all.
    return not cmdline or b"prefect" in cmdline or b"erp-slack" in cmdline


def encryption_key(path: Path | None = None) -> str:
    """The Fernet key for block data, created once with owner-only permissions.

    Without it the server would generate a key and keep it in the same database as the data it
    protects.
    """
    if os.environ.get("PREFECT_SERVER_ENCRYPTION_KEY"):
        return os.environ["PREFECT_SERVER_ENCRYPTION_KEY"]
    from cryptography.fernet import Fernet

    path = path or Installation.here().key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        # Anyone who can read the key can decrypt every saved password and token.
        raise SystemExit(f"error: {path} is readable by other users (mode {mode:o}); "
                         f"run `chmod 600 {path}` and try again")
    return path.read_text().strip()


def prepare_prefect() -> str | None:
    """Settings every command that uses Prefect needs, applied before Prefect is imported.

    Any Prefect server this process starts (a temporary one included) encrypts blocks with the
    installation's key, so blocks saved before ``up`` still read afterwards. Returns the API URL
    the commands will use (the environment's, else the active profile's), or None when Prefect
    will start a temporary server of its own.

    Raises:
        SystemExit: the API URL names a server that does not answer (one line, what to run).
    """
    if "prefect" in sys.modules:
        return None  # too late to matter: this process already read its settings (tests, the demo)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ["PREFECT_SERVER_ENCRYPTION_KEY"] = encryption_key()
    api = os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if api and not _healthy(api):
        raise SystemExit(f"error: the Prefect server at {api} does not answer — start it with "
                         "`erp-slack up --config FILE` (or unset PREFECT_API_URL)")
    return api


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active Prefect profile, read without importing Prefect."""
    import tomllib

    if os.environ.get("PREFECT_PROFILE") is None and not _profiles_path().exists():
        return None
    try:
        data = tomllib.loads(_profiles_path().read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = os.environ.get("PREFECT_PROFILE") or data.get("active", "ephemeral")
    value = data.get("profiles", {}).get(name, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def _profiles_path() -> Path:
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    return Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(api_url.rstrip("/") + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _prefect() -> str:
    exe = shutil.which("prefect", path=os.path.dirname(sys.executable)) or shutil.which("prefect")
    if not exe:
        raise SystemExit("error: the prefect command is not installed in this environment")
    return exe


def _start(inst: Installation, name: str, argv: list[str], cwd: Path | None = None) -> int:
    log = inst.log_file(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # Its own session: Ctrl-C at the terminal reaches `up`, which stops it in order.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
    inst.record(name, proc.pid)
    return proc.pid


def _stop(inst: Installation, name: str) -> int | None:
    """Stop a recorded process (and everything it started); returns its pid if it was running."""
    pid = inst.running(name)
    if pid is None:
        inst.forget(name)
        return None
    for sig, wait in ((signal.SIGTERM, _STOP_WAIT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            break
    inst.forget(name)
    return pid


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it, or it stays a zombie
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ensure_server(inst: Installation, api: str, port: int, *, host: str = "127.0.0.1", timeout: float = 180.0) -> bool:
    """Make sure a Prefect server answers at ``api``; returns True if this call started it."""
    if _healthy(api):
        pid = inst.running("server")
        print(f"Prefect server: already running at {api.removesuffix('/api')}" + (f" (pid {pid})" if pid else ""))
        return False
    pid = _start(inst, "server", [_prefect(), "server", "start", "--host", host, "--port", str(port)])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(api):
            print(f"Prefect server: started at {api.removesuffix('/api')} (pid {pid}, log {inst.log_file('server')})")
            return True
        if not _alive(pid):
            break
        time.sleep(1)
    raise SystemExit(f"error: the Prefect server did not start; see {inst.log_file('server')}")


def _run(*argv: str, cwd: Path | None = None, ok_if: str | None = None) -> None:
    res = subprocess.run([_prefect(), *argv], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0 and not (ok_if and ok_if in (res.stdout + res.stderr)):
        raise SystemExit(f"error: prefect {' '.join(argv)} failed:\n{res.stdout}{res.stderr}")


def server_database_url(url: str) -> str:
    """The Prefect server's database URL: a PostgreSQL URL as the audit store takes it
    (``postgresql://…``) becomes the asyncpg form Prefect's server needs."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise SystemExit("error: --database takes a PostgreSQL URL (postgresql://user@host:5432/prefect)")
    return url


def _write_profile(api: str) -> None:
    """Activate a Prefect profile pointing at this server, for every later command in any shell
    (and, with ``--database``, the database a server restarted by a later ``up`` must use)."""
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_URL,
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        load_profiles,
        save_profiles,
    )

    profiles = load_profiles()
    values: dict[Any, Any] = {PREFECT_API_URL: api, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        values[PREFECT_API_DATABASE_CONNECTION_URL] = os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
    profiles.update_profile(PROFILE, values)
    profiles.set_active(PROFILE)
    save_profiles(profiles)


def _check_blocks_readable() -> None:
    """Blocks saved under another encryption key cannot be read by this server: say how to
    repair that instead of letting every scheduled run fail."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.read_block_documents(include_secrets=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the same thing to a person
        raise SystemExit(
            "error: the Prefect server cannot read its saved blocks (they were encrypted with another key, "
            f"{type(exc).__name__}). Repair: `erp-slack down`, then `prefect server database reset -y` "
            "(clears Prefect's run history and blocks; the audit database is not touched), then "
            "`erp-slack up --config FILE` again."
        ) from None


def up(args: argparse.Namespace) -> int:
    project = Path(args.project_dir).resolve()
    if not (project / "prefect.yaml").exists():
        raise SystemExit(f"error: no prefect.yaml in {project}; run from the project folder or give --project-dir")
    inst = Installation.here()
    port = int(getattr(args, "port", 4200) or 4200)
    api = os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = api  # before Prefect is imported: see the module docstring
    os.environ["PREFECT_SERVER_ENCRYPTION_KEY"] = encryption_key(inst.key_file)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if getattr(args, "database", None):
        # The server's own database: PostgreSQL when workers on several hosts share it.
        os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = server_database_url(args.database)
    cfg = None
    if args.config:
        from erp_slack.config import load_config

        cfg = load_config(args.config)  # a bad file stops here, before anything starts
    started_server = ensure_server(inst, api, port, host=getattr(args, "host", None) or "127.0.0.1")
    _write_profile(api)
    print(f"Prefect profile '{PROFILE}' is active: `prefect` commands in any shell use this server")
    _check_blocks_readable()
    _run("work-pool", "create", POOL, "--type", "process", ok_if="already exists")
    print(f"Work pool: {POOL}")
    _run("block", "register", "-m", "blocks")
    print("Blocks registered")
    if cfg is not None:
        from cli.apply import save_blocks

        for line in save_blocks(cfg):
            print(line)
    _run("--no-prompt", "deploy", "--all", cwd=project)
    print("Deployed everything in prefect.yaml")
    if cfg is not None:
        _configure_deployments(cfg)
    worker = inst.running("worker")
    if worker is not None:
        print(f"A worker is already running (pid {worker}); not starting another. `erp-slack down` stops it.")
        return 0
    if args.no_worker:
        print(f"Start a worker with: prefect worker start --pool {POOL}")
        return 0
    worker = _start(inst, "worker", [_prefect(), "worker", "start", "--pool", POOL], cwd=project)
    print(f"Worker: started (pid {worker}, log {inst.log_file('worker')})")
    if args.detach:
        print("Running in the background; `erp-slack down` stops the worker and the server.")
        return 0
    return _supervise(inst, worker, started_server)


def _configure_deployments(cfg: Any) -> None:
    from blocks.slack import gcl_name
    from cli.apply import update_deployments
    from flows.pipeline import source_lock_name

    for line in update_deployments(cfg):
        print(line)
    for source, section in (("syspro", cfg.syspro), ("gp", cfg.dynamics_gp)):
        for company in section.company_list() if section is not None else []:
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


def _supervise(inst: Installation, pid: int, started_server: bool) -> int:
    """Watch the worker in the foreground; Ctrl-C or SIGTERM stops it (and the server this
    command started) within seconds. A worker that dies ends `up` with an error, so a service
    manager restarts the whole installation."""
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("Watching the worker (Ctrl-C stops the worker and the server).", flush=True)
    while not stopping and _alive(pid):
        time.sleep(0.5)
    crashed = not stopping
    _stop(inst, "worker")
    if started_server:
        _stop(inst, "server")
    print("Stopped." if not crashed else f"error: the worker exited; see {inst.log_file('worker')}", flush=True)
    return 1 if crashed else 0


def down(args: argparse.Namespace) -> int:
    """Stop the worker and the server `up` started, by their recorded process ids."""
    inst = Installation.here()
    for name in ("worker", "server"):
        pid = _stop(inst, name)
        print(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")
    print(f"Kept: Prefect's database with its blocks, deployments and run history; the encryption key "
          f"({inst.key_file}); the audit database. `erp-slack up` starts everything again.")
    return 0
