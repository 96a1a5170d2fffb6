"""``wallie-cli scheduler`` and ``wallie-cli inspect schedule``: run and show the schedule."""

from __future__ import annotations

import logging
import signal
from typing import Any

import click

from wallie.broker import embedded_worker, run_embedded
from wallie.db.fields import utcnow
from wallie.schedule.local import LOCAL_JOBS
from wallie.schedule.scheduler import Scheduler, periodic_actors

from .common import CliContext, echo_json, json_option, pass_context

logger = logging.getLogger("cli.schedule")


def _scheduler(obj: CliContext) -> Scheduler:
    broker = obj.broker
    return Scheduler(periodic_actors(broker), broker=broker, settings=obj.settings)


@click.command("scheduler", short_help="Send the periodic actors' messages on their UTC cron.")
@click.option("--once", is_flag=True, help="Send the ticks due now, including catch-ups, then exit.")
@pass_context
def scheduler_command(obj: CliContext, once: bool) -> None:
    """Run the scheduler: each periodic actor's cron is read in UTC, each tick
    is sent once however many schedulers run, and ticks missed while no
    scheduler ran are caught up once per actor."""
    scheduler = _scheduler(obj)
    if not scheduler.actors:
        click.echo("No periodic actor to schedule.", err=True)
        return

    logger.info("Registered periodic actors (cron in UTC):")
    for actor in scheduler.actors:
        spec = str(actor.options["periodic"])
        logger.info("    %-24s %s:%s@%s", spec, actor.fn.__module__, actor.actor_name, actor.queue_name)

    for job in LOCAL_JOBS:
        logger.info("    %-24s %s per user, from local_time_tick", job.describe(), job.name)

    if obj.embedded:
        logger.warning("REDIS_URL is unset: this process runs the jobs it schedules.")

    if once:
        for sent in scheduler.tick():
            click.echo(f"Sent {sent.actor} for tick {sent.tick_at.isoformat()} ({sent.message_id}).")

        if obj.embedded:
            run_embedded(obj.broker)
        return

    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, scheduler.stop)
    logger.info("Scheduler started.")
    if obj.embedded:
        # Without Redis the messages live in this process, so it runs them too.
        with embedded_worker(obj.broker, worker_threads=obj.settings.worker_threads):
            scheduler.loop()
    else:
        scheduler.loop()

    logger.info("Scheduler stopped.")


def schedule_rows(obj: CliContext) -> list[dict[str, Any]]:
    """Return each periodic actor with its cron, queue and next UTC run."""
    scheduler = _scheduler(obj)
    now = utcnow()
    rows = []
    for actor in scheduler.actors:
        next_run = scheduler.next_run(actor, now)
        rows.append(
            {
                "actor": actor.actor_name,
                "cron": str(actor.options["periodic"]),
                "queue": actor.queue_name,
                "next_run": next_run.isoformat() if next_run else None,
            }
        )

    return rows


@click.command("schedule", short_help="Periodic actors with cron, queue and next run.")
@json_option
@pass_context
def schedule_command(obj: CliContext, as_json: bool) -> None:
    """List every periodic actor with its cron (read in UTC), queue and next run
    time in UTC, then the per-user jobs that run at a local time."""
    rows = schedule_rows(obj)
    local = [{"job": job.name, "when": job.describe()} for job in LOCAL_JOBS]
    if as_json:
        echo_json({"periodic": rows, "local": local})
        return

    if not rows:
        click.echo("No periodic actors are declared.")
        return

    click.echo(f"{'actor':<28} {'cron (UTC)':<16} {'queue':<12} next run (UTC)")
    for row in rows:
        click.echo(f"{row['actor']:<28} {row['cron']:<16} {row['queue']:<12} {row['next_run'] or '-'}")

    click.echo("")
    click.echo("Per-user jobs, started by local_time_tick in each user's time zone:")
    for job in local:
        click.echo(f"{job['job']:<28} {job['when']}")
