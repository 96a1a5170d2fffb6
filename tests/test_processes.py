"""The real processes of the Procfile and wallie-cli, started as subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wallie.db import connect
from wallie.db.models import JobRun
from wallie.settings import Settings

BIN = Path(sys.executable).parent


def _env(settings: Settings, redis_url: str | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(WALLIE_HOME=str(settings.home), DATABASE_URL=settings.database_url)
    if redis_url:
        env["REDIS_URL"] = redis_url

    return env


def test_wallie_cli_runs_as_a_console_script(settings: Settings) -> None:
    result = subprocess.run([BIN / "wallie-cli", "--help"], capture_output=True, text=True, env=_env(settings), check=False)

    assert result.returncode == 0
    assert "enqueue" in result.stdout


def test_embedded_enqueue_runs_the_job_before_exiting(settings: Settings) -> None:
    subprocess.run([BIN / "wallie-cli", "db", "migrate"], env=_env(settings), check=True, capture_output=True)

    result = subprocess.run(
        [BIN / "wallie-cli", "enqueue", "outboxSweep", "--json"],
        capture_output=True, text=True, env=_env(settings), check=False, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["actor"] == "outbox_sweep"
    assert run["status"] == "succeeded"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_with_pending_migrations_asks_for_migrate(settings: Settings) -> None:
    result = subprocess.run(
        [BIN / "wallie-cli", "runs", "list"], capture_output=True, text=True, env=_env(settings), check=False
    )

    assert result.returncode == 1
    assert "Run: wallie-cli db migrate" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "garbage"),
        ("REDIS_URL", "http://cache.invalid"),
        ("WALLIE_HOT_LEAD_THRESHOLD", "abc"),
        ("WALLIE_HOME", "/nonexistent/wallie-home"),
    ],
)
def test_invalid_setting_exits_3_without_traceback(settings: Settings, variable: str, value: str) -> None:
    env = {**_env(settings), variable: value}
    if variable == "WALLIE_HOME":
        # The default SQLite file lives in WALLIE_HOME.
        del env["DATABASE_URL"]

    result = subprocess.run([BIN / "wallie-cli", "runs", "list"], capture_output=True, text=True, env=env, check=False)

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "DATABASE_URL" in result.stderr or variable in result.stderr


def test_unreachable_redis_exits_4_naming_it(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([BIN / "wallie-cli", "db", "migrate"], env=_env(settings), check=True, capture_output=True)
    env = {**_env(settings), "REDIS_URL": f"redis://:s3cret@127.0.0.1:{port}/0"}

    result = subprocess.run([BIN / "wallie-cli", "inspect", "queues"], capture_output=True, text=True, env=env, check=False)

    assert result.returncode == 4, result.stderr
    assert f"cannot reach Redis at REDIS_URL='redis://:***@127.0.0.1:{port}/0'" in result.stderr
    assert "s3cret" not in result.stderr


def test_unknown_actor_exits_2_in_a_real_process(settings: Settings) -> None:
    subprocess.run([BIN / "wallie-cli", "db", "migrate"], env=_env(settings), check=True, capture_output=True)

    result = subprocess.run(
        [BIN / "wallie-cli", "enqueue", "no_such_actor"], capture_output=True, text=True, env=_env(settings), check=False
    )

    assert result.returncode == 2
    assert "Valid actors:" in result.stderr


@pytest.mark.redis
def test_dramatiq_worker_process_runs_actors_from_redis(settings: Settings, redis_url: str) -> None:
    env = _env(settings, redis_url)
    subprocess.run([BIN / "wallie-cli", "db", "migrate"], env=env, check=True, capture_output=True)
    sent = subprocess.run(
        [BIN / "wallie-cli", "enqueue", "outbox_sweep", "--json"], env=env, check=True, capture_output=True, text=True
    )
    message_id = json.loads(sent.stdout)["message_id"]

    worker = subprocess.Popen(
        [BIN / "dramatiq", "actors", "--processes", "1", "--threads", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        connect(settings)
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != "succeeded":
            time.sleep(0.2)
            run = JobRun.select().where(JobRun.message_id == message_id).order_by(JobRun.attempt.desc()).first()
            status = run.status if run else None
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    assert status == "succeeded"


@pytest.mark.redis
def test_scheduler_registers_the_periodic_actors(settings: Settings, redis_url: str) -> None:
    subprocess.run([BIN / "wallie-cli", "db", "migrate"], env=_env(settings, redis_url), check=True, capture_output=True)
    scheduler = subprocess.Popen(
        [BIN / "wallie-cli", "scheduler"],
        env=_env(settings, redis_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = scheduler.stdout.readline()
            lines.append(line)
            if "outbox_sweep" in line or not line:
                break
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)

    assert any("* * * * *" in line and "actors.outbox:outbox_sweep@outbox" in line for line in lines), lines
