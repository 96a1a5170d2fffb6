"""Measure what Wallie's middleware costs a worker, against Dramatiq's defaults.

Three variants process the same no-op actor on a real Redis:

- ``bare``: a ``RedisBroker`` with Dramatiq's default middleware only;
- ``full``: Wallie's stack from ``wallie.broker.make_broker`` (database
  connection, run history, deleted users, debounce, glass ceiling), on a
  database (a temporary SQLite file unless ``--database-url`` is given);
- ``limited``: the full stack with an actor that declares
  ``limits=ActorLimits("openai", per="deployment")`` under rate limits it
  never reaches.

The actor takes a ``user_id`` argument, as every Wallie actor that works
for a user does, so the per-user checks (deleted users, the glass
ceiling's user) run as they do in production.  The messages cycle through
:data:`USERS` users, who exist in the full stack's database.

Each variant runs in a subprocess of its own, ``--rounds`` times, the
variants taking turns, and the median rate counts.  Each run
enqueues ``--messages`` messages, then starts one in-process
``dramatiq.Worker`` with ``--threads`` threads and times from the worker's
start until the actor has incremented a Redis counter once per message and
run history has written its last rows.  The counter costs each variant the
same one Redis round trip per message.

Run: ``python benchmarks/middleware_overhead.py [--messages 20000] [--threads 8]
[--redis-url URL] [--database-url URL]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Share of the bare rate the full stack should keep.
TARGET_RATIO = 0.70

#: How often the timer reads the Redis counter, in seconds.
POLL_INTERVAL_S = 0.02

#: How long one variant may run before it is abandoned, in seconds.
VARIANT_TIMEOUT_S = 900

#: Redis key the actor increments once per message.
COUNTER_KEY = "benchmark:middleware:done"

VARIANTS = ("bare", "full", "limited")

#: Users the messages cycle through.
USERS = 100


def main() -> None:
    """Parse the options and run the parent or one variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="Messages per variant.")
    parser.add_argument("--threads", type=int, default=8, help="Worker threads.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs of each variant; the median counts.")
    parser.add_argument("--redis-url", help="Use this Redis (flushed!) instead of starting one.")
    parser.add_argument("--database-url", help="Database of the full stack; default temporary SQLite.")
    parser.add_argument("--profile", help="Write a cProfile of each variant to PREFIX-VARIANT.prof.")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.variant:
        result = run_variant(options)
        print(json.dumps(result))
        return

    run_all(options)


def run_all(options: argparse.Namespace) -> None:
    """Run each variant in its own process and print the rates and the ratio."""
    with tempfile.TemporaryDirectory(prefix="wallie-bench-") as folder:
        server = None
        redis_url = options.redis_url
        if redis_url is None:
            server, redis_url = start_redis(Path(folder))

        database_url = options.database_url or f"sqlite:///{folder}/wallie.db"
        runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        try:
            # Rounds interleave the variants, so a slow spell of a shared
            # machine slows each of them rather than one.
            for _ in range(options.rounds):
                for variant in VARIANTS:
                    runs[variant].append(_spawn(variant, options, redis_url, database_url, folder))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)

    results = {variant: _median(results) for variant, results in runs.items()}
    print_report(options, results, database_url if options.database_url else "sqlite (temporary)")


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the run with the median rate, with every round's rate attached."""
    ordered = sorted(results, key=lambda result: result["rate"])
    return {**ordered[len(ordered) // 2], "rates": [result["rate"] for result in results]}


def _spawn(
    variant: str, options: argparse.Namespace, redis_url: str, database_url: str, folder: str
) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--variant", variant,
        "--messages", str(options.messages), "--threads", str(options.threads),
        "--redis-url", redis_url, "--database-url", database_url,
    ]
    if options.profile:
        command += ["--profile", options.profile]

    environment = {"WALLIE_HOME": folder, "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=VARIANT_TIMEOUT_S, env=environment,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"Variant {variant} failed:\n{completed.stderr[-4000:]}")

    return json.loads(completed.stdout.strip().splitlines()[-1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``redis-server`` without persistence on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed; install it or pass --redis-url.")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)

    process.terminate()
    sys.exit(f"redis-server did not listen on port {port} within 30 s.")


def run_variant(options: argparse.Namespace) -> dict[str, Any]:
    """Enqueue the messages of one variant, process them, and return the timing."""
    import dramatiq
    import redis

    client = redis.Redis.from_url(options.redis_url)
    client.flushdb()
    broker, actor, user_ids = _build(options, client)
    for number in range(options.messages):
        actor.send(user_ids[number % len(user_ids)])

    _flush_history(broker)
    worker = dramatiq.Worker(broker, worker_threads=options.threads, worker_timeout=100)
    profiler = _start_profile(options)
    started = time.perf_counter()
    worker.start()
    while int(client.get(COUNTER_KEY) or 0) < options.messages:
        time.sleep(POLL_INTERVAL_S)

    _flush_history(broker)
    elapsed = time.perf_counter() - started
    worker.stop()
    _stop_profile(options, profiler)
    broker.close()
    return {
        "variant": options.variant,
        "messages": options.messages,
        "seconds": round(elapsed, 3),
        "rate": round(options.messages / elapsed, 1),
        "job_runs": _count_runs(options),
    }


def _build(options: argparse.Namespace, client: Any) -> tuple[Any, Any, list[int]]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    def noop(user_id: int) -> None:
        client.incr(COUNTER_KEY)

    if options.variant == "bare":
        broker = RedisBroker(url=options.redis_url)
        user_ids = list(range(1, USERS + 1))
        return broker, dramatiq.actor(noop, broker=broker, queue_name="bench"), user_ids

    from wallie.broker import make_broker
    from wallie.db import connect
    from wallie.db.migrate import migrate
    from wallie.db.models import JobRun, User
    from wallie.middleware.glass_ceiling import ActorLimits
    from wallie.settings import load_settings

    settings = load_settings(
        {
            "WALLIE_HOME": tempfile.gettempdir(),
            "DATABASE_URL": options.database_url,
            "REDIS_URL": options.redis_url,
        }
    )
    # Rate windows far above what one worker can reach, so the glass
    # ceiling does all its work but never delays a message.
    settings = settings.replace(
        openai_requests_per_minute=100_000_000, openai_tokens_per_minute=100_000_000
    )
    migrate(connect(settings))
    JobRun.delete().execute()
    user_ids = [
        User.get_or_create(email=f"bench-{number}@example.com")[0].id for number in range(USERS)
    ]
    broker = make_broker(settings)
    dramatiq.set_broker(broker)
    if options.variant == "limited":
        limits = ActorLimits("openai", per="deployment")
        actor = dramatiq.actor(noop, broker=broker, queue_name="bench", limits=limits)
        return broker, actor, user_ids

    return broker, dramatiq.actor(noop, broker=broker, queue_name="bench"), user_ids


def _flush_history(broker: Any) -> None:
    from wallie.broker import get_run_history

    history = get_run_history(broker) if "wallie" in sys.modules else None
    if history is not None:
        history.flush()


def _count_runs(options: argparse.Namespace) -> int | None:
    if options.variant == "bare":
        return None

    from wallie.db.models import JobRun

    return JobRun.select().where(JobRun.status == "succeeded").count()


def _start_profile(options: argparse.Namespace) -> Any:
    """Give each worker thread a cProfile profiler of its own; return their list."""
    if not options.profile:
        return None

    import cProfile

    from dramatiq.worker import _WorkerThread

    profilers: list[cProfile.Profile] = []
    original = _WorkerThread.run

    def profiled_run(thread: Any) -> None:
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.runcall(original, thread)

    _WorkerThread.run = profiled_run
    return profilers


def _stop_profile(options: argparse.Namespace, profilers: Any) -> None:
    """Merge the worker threads' profiles into one file (after the threads stopped)."""
    if not profilers:
        return

    import pstats

    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        stats.add(profiler)

    stats.dump_stats(f"{options.profile}-{options.variant}.prof")


def print_report(options: argparse.Namespace, results: dict[str, dict[str, Any]], database: str) -> None:
    """Print the machine, the command and one row per variant, as Markdown."""
    bare = results["bare"]["rate"]
    database_option = f" --database-url {options.database_url}" if options.database_url else ""
    print(f"- Command: `python benchmarks/middleware_overhead.py --messages {options.messages} "
          f"--threads {options.threads} --rounds {options.rounds}{database_option}`")
    print(f"- Machine: {_cpu_model()}, Linux {platform.machine()}, Python {platform.python_version()}, "
          f"{_redis_version()}")
    print(f"- Database of the full stack: {database}")
    print(f"- Date: {datetime.date.today().isoformat()}")
    print(f"- Load average (1, 5, 15 min) after the runs: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"- Messages per run: {options.messages:,}; worker threads: {options.threads}; rounds: {options.rounds}")
    print()
    print("| variant | messages | seconds | messages/s (median) | rounds (messages/s) | share of bare | job_run rows |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for variant, result in results.items():
        share = result["rate"] / bare
        runs = "–" if result["job_runs"] is None else f"{result['job_runs']:,}"
        rounds = ", ".join(f"{rate:,.0f}" for rate in result["rates"])
        print(f"| {variant} | {result['messages']:,} | {result['seconds']:.2f} | "
              f"{result['rate']:,.0f} | {rounds} | {share:.0%} | {runs} |")

    ratio = results["full"]["rate"] / bare
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print()
    print(f"Ratio full/bare: {ratio:.2f} ({verdict} the target of {TARGET_RATIO:.0%}).")


def _cpu_model() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown CPU"

    model = next(
        (line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Model name")),
        "unknown CPU",
    )
    cpus = next(
        (line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("CPU(s)")),
        "?",
    )
    return f"{model}, {cpus} CPUs"


def _redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "Redis (external)"

    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for part in output.stdout.split():
        if part.startswith("v="):
            return f"Redis {part[2:]}"

    return "Redis"


if __name__ == "__main__":
    main()
