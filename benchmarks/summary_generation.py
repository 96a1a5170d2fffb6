"""Time the daily summary of every user, built and rendered in one process.

The script fills an empty database with USERS users of realistic size (see
the constants below), spread over a few time zones, then builds and renders
the daily summary of every user for one local date with
:func:`wallie.reports.daily.build_daily_summaries`, which queries per batch
of users rather than per user.  It prints the time, the rate and the number
of SQL queries, and writes them to the "Daily summary generation" section of
docs/benchmarks.md (one row per database).

Run: .venv/bin/python benchmarks/summary_generation.py [--database-url URL ...] [--users N] [--no-write]
Without --database-url it uses a temporary SQLite file.  A PostgreSQL URL must
name an empty database, which the script migrates.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, time as clock, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import peewee

from wallie.db import make_database
from wallie.db.migrate import migrate
from wallie.db.models import (
    Contact,
    Conversation,
    LeadScore,
    Message,
    Reminder,
    User,
    database_proxy,
)
from wallie.reports.daily import build_daily_summaries, render_daily_summary

#: Contacts (each with one 1:1 conversation) per user.
CONTACTS = 12
#: Messages per user over the last 14 days.
MESSAGES = 40
#: Reminders per user, due from a week ago to a week ahead.
REMINDERS = 4
#: Lead score rows per user over the last 10 days.
SCORES = 6
#: Time zones the users are spread over.
ZONES = ("Europe/Amsterdam", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe", "America/Sao_Paulo")
#: Local date the summaries are built for.
DAY = date(2026, 3, 10)
#: Target for all users, in seconds.
TARGET_S = 60.0
#: Rows per insert while filling the database.
INSERT_BATCH = 2000

SECTION = "## Daily summary generation"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def _insert(model: type[peewee.Model], rows: list[dict]) -> None:
    database = database_proxy.obj
    with database.atomic():
        for start in range(0, len(rows), INSERT_BATCH):
            model.insert_many(rows[start : start + INSERT_BATCH]).execute()


def fill(users: int, seed: int = 7) -> None:
    """Insert ``users`` users with contacts, conversations, messages, reminders and scores."""
    rng = random.Random(seed)
    now = datetime.combine(DAY, clock(6), tzinfo=UTC)
    _insert(User, [{"email": f"user{n}@example.com", "name": f"User {n}", "time_zone": ZONES[n % len(ZONES)]} for n in range(users)])
    user_ids = [user.id for user in User.select(User.id).order_by(User.id)]
    _insert(Contact, [{"user": uid, "name": f"Client {uid}-{c} <b>&</b>"} for uid in user_ids for c in range(CONTACTS)])
    contacts: dict[int, list[int]] = {}
    for contact_id, user_id in Contact.select(Contact.id, Contact.user).tuples():
        contacts.setdefault(user_id, []).append(contact_id)

    _insert(
        Conversation,
        [
            {"user": uid, "channel": "whatsapp", "external_id": f"chat-{cid}", "title": f"Chat {cid}", "contact": cid}
            for uid in user_ids
            for cid in contacts[uid]
        ],
    )
    chats: dict[int, list[tuple[int, int]]] = {}
    for chat_id, user_id, contact_id in Conversation.select(Conversation.id, Conversation.user, Conversation.contact).tuples():
        chats.setdefault(user_id, []).append((chat_id, contact_id))

    messages, reminders, scores = [], [], []
    for uid in user_ids:
        for n in range(MESSAGES):
            chat_id, contact_id = rng.choice(chats[uid])
            inbound = rng.random() < 0.55
            messages.append(
                {
                    "user": uid, "channel": "whatsapp", "external_id": f"m-{uid}-{n}", "conversation": chat_id,
                    "sender": contact_id if inbound else None, "direction": "inbound" if inbound else "outbound",
                    "sent_at": now - timedelta(minutes=rng.randrange(14 * 24 * 60)), "body": "Hello",
                }
            )
        for n in range(REMINDERS):
            reminders.append(
                {
                    "user": uid, "key": f"bench:{uid}:{n}", "contact": rng.choice(contacts[uid]), "text": "Send the quote",
                    "due_at": now + timedelta(hours=rng.randrange(-7 * 24, 7 * 24)), "status": rng.choice(("open", "open", "done")),
                }
            )
        for _ in range(SCORES):
            scores.append(
                {
                    "user": uid, "contact": rng.choice(contacts[uid]), "score": rng.randrange(101), "reasons": "[]",
                    "computed_at": now - timedelta(minutes=rng.randrange(10 * 24 * 60)),
                }
            )

    _insert(Message, messages)
    _insert(Reminder, reminders)
    _insert(LeadScore, scores)


class QueryCounter:
    """Count the SQL statements a database runs."""

    def __init__(self, database: peewee.Database) -> None:
        self.count = 0
        original = database.execute_sql

        def counted(sql: str, params: object = None, *args: object, **kwargs: object) -> object:
            self.count += 1
            return original(sql, params, *args, **kwargs)

        database.execute_sql = counted  # type: ignore[method-assign]


def measure(url: str, users: int) -> dict[str, object]:
    """Fill the database at ``url`` and time the summaries of every user."""
    database = make_database(url)
    database_proxy.initialize(database)
    migrate(database)
    started = time.perf_counter()
    fill(users)
    filled_s = time.perf_counter() - started

    counter = QueryCounter(database)
    as_of = datetime.combine(DAY, clock(8), tzinfo=ZoneInfo(ZONES[0]))
    started = time.perf_counter()
    all_users = list(User.select())
    summaries = build_daily_summaries([(user, DAY) for user in all_users], as_of)
    mails = [render_daily_summary(summary) for summary in summaries.values() if not summary.is_empty]
    elapsed = time.perf_counter() - started
    database.close()
    return {
        "database": url.split(":", 1)[0].replace("postgresql", "postgres"),
        "users": len(all_users),
        "mails": len(mails),
        "seconds": elapsed,
        "rate": len(all_users) / elapsed,
        "queries": counter.count,
        "fill_s": filled_s,
    }


def machine() -> str:
    """Return the CPU model, core count and Python version."""
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"^Model name:\s*(.+)$", lscpu, re.MULTILINE)
        model = found.group(1).strip() if found else model
    except OSError:
        pass

    import os

    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.machine()}, Python {platform.python_version()}"


def section(results: list[dict[str, object]], command: str) -> str:
    """Return the Markdown section for ``results``."""
    lines = [
        SECTION,
        "",
        f"Building and rendering (text and HTML) the daily summary of every user, in one process, for users with "
        f"{CONTACTS} contacts, {MESSAGES} messages over 14 days, {REMINDERS} reminders and {SCORES} lead scores each, "
        f"spread over {len(ZONES)} time zones. Filling the database is not timed; sending is not included.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine()}",
        f"- Target: all users in under {TARGET_S:.0f} s",
        "",
        "| Database | Users | Mails | Time | Users per second | SQL queries |",
        "|---|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row['database']} | {row['users']} | {row['mails']} | {row['seconds']:.1f} s | {row['rate']:.0f} | {row['queries']} |"
        )

    lines += [
        "",
        "Queries are four or five per batch of 500 users sharing a time zone and date, so their number grows with "
        "users / 500 and not with users.",
        "",
    ]
    return "\n".join(lines)


def write_section(text_of_section: str) -> None:
    """Replace or append this benchmark's section in docs/benchmarks.md."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + text_of_section
    else:
        end = text.find("\n## ", start + len(SECTION))
        rest = "" if end == -1 else text[end + 1 :]
        text = text[:start] + text_of_section + ("\n" + rest if rest else "")

    DOCS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on each database, print the figures and update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", action="append", help="Empty database to fill; repeat for several. Default: a temporary SQLite file.")
    parser.add_argument("--users", type=int, default=10_000, help="Number of users to generate.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave the docs alone.")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for url in args.database_url or [f"sqlite:///{folder}/bench.db"]:
            row = measure(url, args.users)
            print(
                f"{row['database']}: {row['users']} users, {row['mails']} mails in {row['seconds']:.1f} s "
                f"({row['rate']:.0f} users/s, {row['queries']} queries; fill took {row['fill_s']:.0f} s)"
            )
            results.append(row)

    failed = any(float(row["seconds"]) > TARGET_S for row in results)
    if not args.no_write:
        shown = ["--database-url sqlite:///TMP/bench.db" if url.startswith("sqlite") else "--database-url postgresql://HOST/EMPTY_DB" for url in (args.database_url or [])]
        command = " ".join(["python benchmarks/summary_generation.py", *shown, f"--users {args.users}"])
        write_section(section(results, shlex.join(command.split())))

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
