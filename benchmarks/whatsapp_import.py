"""Benchmark WhatsApp imports end to end into PostgreSQL and SQLite.

Generates Android exports with ``whatsapp_parse.generate``, then imports each
one in a fresh subprocess per database through
:func:`wallie.whatsapp.importer.import_whatsapp` (parse, contacts, batched
``insert_messages``, attachments, final counts), so the peak resident set
size measured there belongs to that import alone. PostgreSQL is a throwaway
cluster started as the tests start theirs. Prints a table and writes the
figures into the "WhatsApp import" section of docs/benchmarks.md.

Usage::

    python benchmarks/whatsapp_import.py [--sizes 10000,100000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from whatsapp_parse import OUT, generate  # noqa: E402 - needs the path above

#: Benchmark record page.
DOCS = ROOT / "docs" / "benchmarks.md"

#: Section title in ``DOCS``.
TITLE = "## WhatsApp import"

#: Export sizes run by default, in messages.
DEFAULT_SIZES = (10_000, 100_000)

#: Messages per second the PostgreSQL import should reach.
TARGET_RATE = 20_000


def worker(database_url: str, path: str) -> None:
    """Import ``path`` into a fresh schema and print messages, seconds and peak RSS."""
    import logging

    logging.disable(logging.CRITICAL)
    from wallie.db import connect
    from wallie.db.migrate import migrate
    from wallie.settings import load_settings
    from wallie.storage import get_or_create_user
    from wallie.whatsapp.importer import import_whatsapp

    home = tempfile.mkdtemp(prefix="wallie-bench-")
    settings = load_settings({"WALLIE_HOME": home, "DATABASE_URL": database_url})
    migrate(connect(settings))
    user, _ = get_or_create_user("bench@example.com", locale="en-GB")
    start = time.perf_counter()
    result = import_whatsapp(user, path, settings, me="Ana Costa")
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stored = result.stats["messages"] + result.stats["system_messages"]
    print(json.dumps({"messages": stored, "seconds": seconds, "peak_mib": peak_kib / 1024}))


def measure(database_url: str, path: Path) -> dict[str, float]:
    """Run one import in a subprocess and return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", database_url, str(path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _postgres_url(size: int) -> tuple[object, str]:
    from tests.servers import start_postgres

    server = start_postgres()
    name = f"bench_{size}"
    subprocess.run(
        [*server.run_as, str(server.bin_dir / "createdb"), "-h", "127.0.0.1", "-p",
         str(server.port), "-U", "wallie", name],
        check=True, capture_output=True,
    )
    return server, server.url(name)


def machine() -> str:
    """Describe the CPU, cores and Python version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(rows: list[dict[str, object]], command: str) -> None:
    """Replace the "WhatsApp import" section of docs/benchmarks.md."""
    lines = [
        TITLE,
        "",
        f"Command: `{command}` on {machine()}. PostgreSQL is the throwaway cluster "
        "of the tests (fsync off, as in CI); SQLite is a file in a temporary "
        "folder. Each import runs in its own process, from the parse of the export "
        "to the final counts, in batches of 500 rows through `insert_messages`; "
        f"the target is {TARGET_RATE:,} messages per second into PostgreSQL.",
        "",
        "| Database | Messages | Seconds | Messages per second | Peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['database']} | {row['messages']:,} | {row['seconds']:.2f} | "
            f"{row['rate']:,.0f} | {row['peak_mib']:.0f} |"
        )
    lines += [
        "",
        "Where the time goes (100,000 messages into PostgreSQL, timed per step): "
        "parsing about 15%, the 500-row `INSERT ... ON CONFLICT DO NOTHING` "
        "statements about 70%, attachments and final counts the rest. Two fixes "
        "came out of this benchmark: `insert_messages` builds its SQL itself "
        "(peewee's query builder took most of the time before), and the "
        "attachment lookup filters on the `(conversation, sent_at)` index (with "
        "stale statistics after a bulk insert, PostgreSQL filtered every message "
        "of the user, which made the import quadratic). The export is parsed once "
        "and read back from a spool file, not parsed twice.",
        "",
        f"NOTE: the target of {TARGET_RATE:,} messages per second is not reached "
        "here. The parser alone runs at about 10,000 to 30,000 messages per "
        "second on this machine, and each message row updates 8 indexes and "
        "fires 4 foreign-key checks in PostgreSQL, with the server sharing the "
        "2 CPUs with the importer and with other test runs.",
    ]
    section = "\n".join(lines) + "\n"
    text = DOCS.read_text(encoding="utf-8")
    if TITLE in text:
        head, _, rest = text.partition(TITLE)
        following = rest.find("\n## ")
        tail = rest[following + 1 :] if following >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text, encoding="utf-8")


def main() -> None:
    """Generate the exports, import them into both databases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="Export sizes in messages, comma-separated.")
    parser.add_argument("--no-write", action="store_true",
                        help="Print only; leave docs/benchmarks.md alone.")
    parser.add_argument("--worker", nargs=2, metavar=("DATABASE_URL", "PATH"),
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(*arguments.worker)
        return

    OUT.mkdir(exist_ok=True)
    rows = []
    for size in (int(value) for value in arguments.sizes.split(",")):
        path = OUT / f"whatsapp_{size}.txt"
        if not path.exists():
            generate(path, size)
        server, url = _postgres_url(size)
        try:
            databases = {
                "PostgreSQL": url,
                "SQLite": f"sqlite:///{tempfile.mkdtemp(prefix='wallie-bench-')}/w.db",
            }
            for database, database_url in databases.items():
                figures = measure(database_url, path)
                rate = figures["messages"] / figures["seconds"]
                rows.append({"database": database, **figures, "rate": rate})
                print(f"{database:<10} {figures['messages']:>9,} messages "
                      f"{figures['seconds']:7.2f} s {rate:>9,.0f}/s "
                      f"peak {figures['peak_mib']:.0f} MiB", flush=True)
        finally:
            server.stop()

    if not arguments.no_write:
        write_section(rows, "python benchmarks/whatsapp_import.py --sizes "
                      + arguments.sizes)


if __name__ == "__main__":
    main()
