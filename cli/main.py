"""``wallie-cli``: the operator command line of Wallie's workers.

Exit codes: 0 success; 1 a job or operation failed; 2 usage error
(unknown command, actor, option or argument); 3 invalid configuration;
4 the database or Redis is unreachable.
"""

from __future__ import annotations

import logging
import os
import sys

import click
import peewee
import redis

from wallie.errors import ConfigurationError, WallieError
from wallie.settings import load_settings, mask_url

from .common import RET_CONFIG, RET_FAILURE, RET_UNAVAILABLE, CliContext
from .backfill import backfill_command
from .db import db_group
from .dlq import dlq_group
from .gdpr import export_command, gdpr_delete_command
from .inspect import inspect_group
from .jobs import enqueue_command, replay_command, runs_group
from .reports import report_group, summary_group
from .schedule import scheduler_command
from .mailbox import mailbox_group
from .usage import limits_group, usage_command
from .leads import analyze_command, leads_group, reminders_group
from .imports import demo_command, import_group
from .audio import transcribe_command


class WallieGroup(click.Group):
    """The top-level group: turns library errors into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            _exit(f"{error}", RET_CONFIG)
        except peewee.OperationalError as error:
            _exit(_unreachable("the database", "DATABASE_URL", error), RET_UNAVAILABLE)
        except redis.ConnectionError as error:
            _exit(_unreachable("Redis", "REDIS_URL", error), RET_UNAVAILABLE)
        except WallieError as error:
            _exit(f"{error}", RET_FAILURE)

        return None


def _unreachable(server: str, variable: str, error: Exception) -> str:
    value = os.environ.get(variable)
    shown = f"{variable}={mask_url(value)!r}" if value else f"{variable} (default)"
    reason = " ".join(str(error).split()).rstrip(".")
    return f"cannot reach {server} at {shown}: {reason}. Check that it runs and accepts connections."


def _exit(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.group(cls=WallieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wallie-workers")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Operate Wallie's background workers: send jobs, inspect queues and runs."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        _exit(f"{error}", RET_CONFIG)

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = CliContext(settings)


cli.add_command(enqueue_command, "enqueue")
cli.add_command(replay_command, "replay")
cli.add_command(runs_group, "runs")
cli.add_command(inspect_group, "inspect")
cli.add_command(dlq_group, "dlq")
cli.add_command(db_group, "db")
cli.add_command(gdpr_delete_command, "gdpr-delete")
cli.add_command(export_command, "export")
cli.add_command(backfill_command, "backfill")
cli.add_command(scheduler_command, "scheduler")
cli.add_command(summary_group, "summary")
cli.add_command(report_group, "report")
cli.add_command(mailbox_group, "mailbox")
cli.add_command(usage_command, "usage")
cli.add_command(limits_group, "limits")
cli.add_command(reminders_group, "reminders")
cli.add_command(leads_group, "leads")
cli.add_command(analyze_command, "analyze")
cli.add_command(import_group, "import")
cli.add_command(demo_command, "demo")
cli.add_command(transcribe_command, "transcribe")


def main() -> None:
    """Run ``wallie-cli``."""
    cli(prog_name="wallie-cli")
