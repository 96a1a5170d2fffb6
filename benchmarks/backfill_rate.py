"""Measure how fast ``wallie-cli backfill`` puts messages into Redis.

Starts a loopback redis-server (through the test helpers), makes TARGETS
conversations in a SQLite file, and backfills a stand-in actor over them
with no rate limit, through :func:`wallie.backfill.run_backfill`: the
same batches, sent set and cursor commits as the command.  It prints the
messages per second and the queue length, and writes both to the
"Backfill send rate" section of docs/benchmarks.md.

Run: .venv/bin/python benchmarks/backfill_rate.py [--targets N] [--batch-size N] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dramatiq
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import start_redis  # noqa: E402 - after the path change
from wallie.backfill import Filters, create_backfill, plan_backfill, run_backfill  # noqa: E402
from wallie.broker import REDIS_NAMESPACE, reset_broker, setup_broker  # noqa: E402
from wallie.db import connect  # noqa: E402
from wallie.db.migrate import migrate  # noqa: E402
from wallie.db.models import Conversation, User  # noqa: E402
from wallie.settings import load_settings  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Backfill send rate"
QUEUE = "backfill_benchmark"


def _make_conversations(count: int) -> int:
    user = User.create(email="benchmark@example.com")
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    database = Conversation._meta.database
    for start in range(0, count, 5000):
        rows = [
            {"user": user.id, "channel": "whatsapp", "external_id": f"c{index}", "last_message_at": moment}
            for index in range(start, min(start + 5000, count))
        ]
        with database.atomic():
            Conversation.insert_many(rows).execute()

    return user.id


def measure(targets: int, batch_size: int) -> dict[str, float]:
    """Backfill ``targets`` conversations into a fresh Redis and return the rate."""
    server = start_redis()
    try:
        home = tempfile.mkdtemp(prefix="wallie-backfill-")
        settings = load_settings({"WALLIE_HOME": home, "REDIS_URL": server.url})
        migrate(connect(settings))
        reset_broker()
        broker = setup_broker(settings)

        @dramatiq.actor(broker=broker, queue_name=QUEUE)
        def score_conversation(conversation_id: int, user_id: int) -> None:
            """Stand-in actor; never run here."""

        user_id = _make_conversations(targets)
        plan = plan_backfill(score_conversation, Filters(user_id=user_id))
        backfill = create_backfill(plan, rate_per_s=None, requested_by="benchmark")
        started = time.perf_counter()
        done = run_backfill(broker, backfill, batch_size=batch_size, rate_per_s=None)
        seconds = time.perf_counter() - started
        client = redis.Redis.from_url(server.url)
        queued = client.llen(f"{REDIS_NAMESPACE}:{QUEUE}")
        client.close()
        reset_broker()
    finally:
        server.stop()

    return {"targets": targets, "sent": done.sent, "queued": queued, "seconds": seconds, "rate": done.sent / seconds}


def _section(result: dict[str, float], batch_size: int, command: str) -> str:
    cpus = os.cpu_count() or 0
    cpu = _cpu_name()
    return "\n".join(
        [
            SECTION,
            "",
            f"Messages a second that one `backfill` process puts into a loopback Redis, with no rate limit, "
            f"over {result['targets']:,} conversations in SQLite, batches of {batch_size} "
            "(one MULTI/EXEC transaction each: message bodies, queue ids, the sent set), and the cursor "
            "committed after each batch.",
            "",
            f"- Command: `{command}`",
            f"- Machine: {cpu}, {cpus} CPUs, {platform.system()} {platform.machine()}, Python {platform.python_version()}",
            f"- Date: {datetime.now(UTC).date().isoformat()}",
            f"- Messages sent: {result['sent']:,} (queue length afterwards: {result['queued']:,})",
            f"- Seconds: {result['seconds']:.1f}",
            f"- Send rate: {result['rate']:,.0f} messages/s",
            "",
            "In a cProfile run most of the time goes to per-message Python work (building and "
            "JSON-encoding each message, its ids, the Debounce and GlassCeiling enqueue hooks); "
            "Redis round trips are one transaction per batch plus one sent-set check.",
            "",
        ]
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass

    return platform.processor() or "unknown CPU"


def write_section(text: str) -> None:
    """Replace the "Backfill send rate" section of docs/benchmarks.md, or append it."""
    document = DOCS.read_text()
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(document):
        document = pattern.sub(text.rstrip("\n") + "\n", document)
    else:
        document = document.rstrip("\n") + "\n\n" + text

    DOCS.write_text(document)


def main() -> None:
    """Run the benchmark and print, and by default record, the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100_000, help="Conversations to backfill.")
    parser.add_argument("--batch-size", type=int, default=1000, help="Messages per Redis transaction.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    arguments = parser.parse_args()
    result = measure(arguments.targets, arguments.batch_size)
    print(f"Sent {result['sent']:,} messages in {result['seconds']:.1f} s: {result['rate']:,.0f} messages/s.")
    if not arguments.no_write:
        command = "python benchmarks/backfill_rate.py"
        if arguments.targets != 100_000 or arguments.batch_size != 1000:
            command += f" --targets {arguments.targets} --batch-size {arguments.batch_size}"

        write_section(_section(result, arguments.batch_size, command))
        print(f"Updated {DOCS}.")


if __name__ == "__main__":
    main()
