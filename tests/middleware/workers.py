"""Start Dramatiq worker processes for the tests that run several of them.

On a busy machine a worker process takes seconds to import its actors, so
a test that measures timing across workers must wait until all of them
consume.  :func:`dramatiq_workers` waits for each worker's "ready" log line
and keeps each worker's log in a file for the test's assertions.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Line that ``dramatiq`` logs when a worker process starts consuming.
READY_LINE = "Worker process is ready for action."

#: How long a worker process may take to start, in seconds.
READY_TIMEOUT_S = 120


@contextmanager
def dramatiq_workers(
    module: str, count: int, *, env: dict[str, str], folder: Path, threads: int
) -> Iterator[list[Path]]:
    """Start ``count`` worker processes on ``module`` and yield their log files.

    Each ``dramatiq`` command runs one worker process with ``threads``
    threads.  The workers are terminated when the block ends.
    """
    logs = [folder / f"worker-{index}.log" for index in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            with log.open("wb") as output:
                processes.append(subprocess.Popen(
                    [Path(sys.executable).parent / "dramatiq", module,
                     "--processes", "1", "--threads", str(threads)],
                    env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=output,
                ))

        _wait_until_ready(processes, logs)
        yield logs
    finally:
        for process in processes:
            process.terminate()

        for process in processes:
            process.wait(timeout=60)


def error_lines(logs: list[Path]) -> list[str]:
    """Return the ERROR and CRITICAL lines of the workers' logs."""
    lines = []
    for log in logs:
        text = log.read_text(errors="replace")
        lines += [line for line in text.splitlines() if "ERROR" in line or "CRITICAL" in line]

    return lines


def _wait_until_ready(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = set(range(len(processes)))
    while waiting:
        for index in sorted(waiting):
            text = logs[index].read_text(errors="replace")
            if READY_LINE in text:
                waiting.discard(index)
            elif processes[index].poll() is not None:
                raise RuntimeError(
                    f"Worker {index} exited with code {processes[index].returncode} "
                    f"before it was ready. Its log ends with:\n{text[-2000:]}"
                )

        if waiting and time.monotonic() > deadline:
            raise TimeoutError(
                f"Workers {sorted(waiting)} were not ready after {READY_TIMEOUT_S} s. "
                f"See their logs in {logs[0].parent}."
            )

        time.sleep(0.1)
