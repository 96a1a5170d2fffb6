from __future__ import annotations

import json
from collections.abc import Iterator

import dramatiq
import pytest
from click.testing import CliRunner

from cli.main import cli
from wallie.broker import setup_broker
from wallie.db.models import JobRun
from wallie.settings import Settings, get_settings

FAST_RETRIES = {"min_backoff": 10, "max_backoff": 20}


@pytest.fixture
def cli_broker(cli_env: Settings) -> Iterator[dramatiq.Broker]:
    """The broker wallie-cli will use, with two test actors declared on it."""
    broker = setup_broker(get_settings())
    calls: list[tuple[int, str]] = []

    @dramatiq.actor(broker=broker)
    def greet_lead(user_id: int, name: str = "there") -> None:
        calls.append((user_id, name))

    @dramatiq.actor(broker=broker, max_retries=1, **FAST_RETRIES)
    def always_fails(user_id: int) -> None:
        raise RuntimeError(f"provider rejected user {user_id}")

    broker.calls = calls  # type: ignore[attr-defined]
    yield broker


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])

    assert result.exit_code == 0
    for command in ("enqueue", "inspect", "runs", "replay", "dlq", "db"):
        assert command in result.output


def test_enqueue_runs_the_job_in_process_without_redis(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greet_lead", "user_id=3", "name=Ana"])

    assert result.exit_code == 0, result.output
    assert cli_broker.calls == [(3, "Ana")]
    assert "greet_lead" in result.output
    assert "succeeded" in result.output


def test_enqueue_accepts_camel_case_names_and_json_args(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greetLead", "--json-args", '{"user_id": 4}'])

    assert result.exit_code == 0, result.output
    assert cli_broker.calls == [(4, "there")]


def test_unknown_actor_exits_2_and_lists_the_valid_ones(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greet_leed"])

    assert result.exit_code == 2
    assert "Unknown actor 'greet_leed'" in result.output
    assert "greet_lead" in result.output


def test_unknown_argument_exits_2_and_lists_the_valid_ones(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greet_lead", "user_id=1", "nmae=Ana"])

    assert result.exit_code == 2
    assert "takes no argument nmae" in result.output
    assert "user_id, name='there'" in result.output
    assert cli_broker.calls == []


def test_missing_argument_exits_2(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greet_lead", "name=Ana"])

    assert result.exit_code == 2
    assert "user_id" in result.output


def test_argument_of_the_wrong_type_exits_2(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "greet_lead", "user_id=abc"])

    assert result.exit_code == 2
    assert "must be int (got 'abc')" in result.output


def test_failed_job_exits_1_and_is_listed(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["enqueue", "always_fails", "user_id=9", "--json"])

    assert result.exit_code == 1
    runs = json.loads(result.stdout)["runs"]
    assert [run["status"] for run in runs] == ["retrying", "failed"]

    listed = runner.invoke(cli, ["runs", "list", "--status", "failed", "--json"])
    assert [run["actor"] for run in json.loads(listed.output)["runs"]] == ["always_fails"]

    failures = runner.invoke(cli, ["inspect", "failures", "--json"])
    [failure] = json.loads(failures.output)["failures"]
    assert failure["error"] == "provider rejected user 9"


def test_runs_show_prints_every_attempt(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    runner.invoke(cli, ["enqueue", "always_fails", "user_id=9"])
    message_id = JobRun.get().message_id

    result = runner.invoke(cli, ["runs", "show", message_id, "--json"])

    assert result.exit_code == 0
    attempts = json.loads(result.output)["attempts"]
    assert [attempt["attempt"] for attempt in attempts] == [0, 1]
    assert attempts[0]["kwargs"] == {"user_id": 9}


def test_runs_show_of_an_unknown_id_exits_1(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["runs", "show", "no-such-id"])

    assert result.exit_code == 1
    assert "No run matches 'no-such-id'" in result.output


def test_replay_sends_a_new_message_pointing_back(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    runner.invoke(cli, ["enqueue", "greet_lead", "user_id=5"])
    original = JobRun.get().message_id

    result = runner.invoke(cli, ["replay", original, "--json"])

    assert result.exit_code == 0, result.output
    [replayed] = json.loads(result.stdout)["runs"]
    assert replayed["replay_of"] == original
    assert replayed["message_id"] != original
    assert cli_broker.calls == [(5, "there"), (5, "there")]


def test_bulk_replay_takes_only_matching_failures(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    runner.invoke(cli, ["enqueue", "always_fails", "user_id=1"])
    runner.invoke(cli, ["enqueue", "always_fails", "user_id=2"])
    runner.invoke(cli, ["enqueue", "greet_lead", "user_id=3"])

    result = runner.invoke(cli, ["replay", "--actor", "always_fails", "--status", "failed", "--since", "1h", "--dry-run", "--json"])

    assert result.exit_code == 0, result.output
    replays = json.loads(result.output)["replays"]
    assert sorted(entry["actor"] for entry in replays) == ["always_fails", "always_fails"]


def test_replay_without_a_target_is_a_usage_error(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["replay"])

    assert result.exit_code == 2


def test_runs_list_unknown_actor_exits_2(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    unknown = runner.invoke(cli, ["runs", "list", "--actor", "dailySumary"])
    known = runner.invoke(cli, ["runs", "list", "--actor", "dailySummary"])

    assert unknown.exit_code == 2
    assert "Unknown actor 'dailySumary'" in unknown.output
    assert known.exit_code == 0, known.output
    assert "No runs match." in known.output


def test_invalid_setting_exits_3_naming_the_variable(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2@db/wallie")

    result = runner.invoke(cli, ["runs", "list"])

    assert result.exit_code == 3
    assert "DATABASE_URL" in result.output
    assert "hunter2" not in result.output


def test_dlq_without_redis_explains_where_failures_are(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["dlq", "list"])

    assert result.exit_code == 2
    assert "REDIS_URL" in result.output


def test_inspect_actors_shows_options(runner: CliRunner, cli_broker: dramatiq.Broker) -> None:
    result = runner.invoke(cli, ["inspect", "actors", "--json"])

    actors = {actor["actor"]: actor for actor in json.loads(result.output)["actors"]}
    assert actors["always_fails"]["options"]["max_retries"] == 1
    assert actors["greet_lead"]["queue"] == "default"


def test_db_migrate_twice_changes_nothing(runner: CliRunner, cli_env: Settings) -> None:
    result = runner.invoke(cli, ["db", "migrate", "--json"])

    assert result.exit_code == 0
    assert json.loads(result.output) == {"applied": []}
