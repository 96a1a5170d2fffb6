"""Benchmark the WhatsApp export parser against whatstk and chat-miner.

Generates Android exports of the requested sizes, then parses each one in a
fresh subprocess per parser, so the peak resident set size measured there
belongs to that parser alone. Prints a table and writes the figures into the
"WhatsApp parsing" section of docs/benchmarks.md.

Usage::

    python benchmarks/whatsapp_parse.py [--sizes 10000,100000,1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: Folder for generated exports, ignored by git.
OUT = Path(__file__).resolve().parent / "out"

#: Benchmark record page.
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

#: Corpus of real exports next to the repository, for the peer shape check.
CORPUS = Path(
    os.environ.get("WALLIE_CORPUS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)

#: Section title in ``DOCS``.
TITLE = "## WhatsApp parsing"

#: Export sizes run by default, in messages.
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)

#: Runs of each parser on each file by default. The fastest run counts, which
#: keeps the figures steady on a machine that other processes share.
DEFAULT_RUNS = 3

#: Seconds a peer may run on one file before it is stopped.
PEER_TIMEOUT = 1800

#: Parsers run on every file, ours first: with its C extension, then on its
#: pure-Python path.
PARSERS = ("wallie", "wallie-python", "whatstk", "chat-miner")

#: Our own entries in ``PARSERS``, left out of the peers.
OURS = ("wallie", "wallie-python")

_SENDERS = ("Ana Costa", "Ben Okafor", "+44 7700 900123", "Chloé Martin", "Dev Patel")
_WORDS = (
    "quote price delivery tomorrow units invoice call meeting thanks please "
    "confirm order sample discount Friday warehouse 😀 👍🏻 €1,250 ok: yes"
).split()


def generate(path: Path, count: int, seed: int = 7) -> None:
    """Write an Android ``dd/mm/yyyy, HH:mm - Name: text`` export of ``count`` messages.

    One message in 20 spans two lines and one in 50 is a media placeholder, an
    assumed mix rather than one measured on real chats.
    """
    rng = random.Random(seed)
    stamp = datetime.datetime(2021, 1, 13, 8, 0)
    with open(path, "w", encoding="utf-8", newline="") as out:
        for index in range(count):
            stamp += datetime.timedelta(seconds=rng.randint(0, 600))
            sender = rng.choice(_SENDERS)
            body = " ".join(rng.choices(_WORDS, k=rng.randint(3, 14)))
            if index % 50 == 0:
                body = "<Media omitted>"
            elif index % 20 == 0:
                body += "\n" + " ".join(rng.choices(_WORDS, k=6))
            out.write(f"{stamp:%d/%m/%Y, %H:%M} - {sender}: {body}\n")


def _load_wallie() -> Callable[[str], int]:
    from wallie.whatsapp import parse_export

    def run(path: str) -> int:
        with parse_export(path, fallback_date_order="dmy", default_region="GB") as chat:
            return sum(1 for _ in chat.messages())

    return run


def _load_wallie_python() -> Callable[[str], int]:
    from wallie.whatsapp import bulk

    bulk.SPEEDUPS = None
    return _load_wallie()


def _load_whatstk() -> Callable[[str], int]:
    from whatstk import WhatsAppChat

    def run(path: str) -> int:
        chat = WhatsAppChat.from_source(filepath=path, hformat="%d/%m/%Y, %H:%M - %name:")
        return len(chat.df)

    return run


def _load_chatminer() -> Callable[[str], int]:
    from chatminer.chatparsers import WhatsAppParser

    def run(path: str) -> int:
        parser = WhatsAppParser(path)
        parser.parse_file()
        return len(parser.parsed_messages._parsed_messages)

    return run


#: Loaders that import a parser, outside the timed region, and return a runner.
_LOADERS = {
    "wallie": _load_wallie,
    "wallie-python": _load_wallie_python,
    "whatstk": _load_whatstk,
    "chat-miner": _load_chatminer,
}


def worker(name: str, path: str) -> None:
    """Parse ``path`` with one parser and print messages, seconds and peak RSS."""
    import logging

    logging.disable(logging.CRITICAL)
    run = _LOADERS[name]()
    start = time.perf_counter()
    count = run(path)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"messages": count, "seconds": seconds, "peak_mib": peak_kib / 1024}))


def fastest(runs: list[dict[str, object]]) -> dict[str, object]:
    """Return the fastest run, with the highest peak RSS of all runs."""
    done = [run for run in runs if "error" not in run]
    if not done:
        return runs[0]

    best = dict(min(done, key=lambda run: float(str(run["seconds"]))))
    best["peak_mib"] = max(float(str(run["peak_mib"])) for run in done)
    return best


def measure(name: str, path: Path) -> dict[str, object]:
    """Run one parser on one file in a subprocess and return its figures."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", name, str(path)],
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {PEER_TIMEOUT} s"}

    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last.replace(str(path), path.name)[:120]}

    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_corpus_check(folder: Path) -> list[str]:
    """Run both peers with their default options on every corpus export.

    Returns:
      One Markdown list item per export on which a peer raised, with the error
      type, or an empty list when the corpus folder is absent.
    """
    import contextlib
    import io
    import warnings

    warnings.filterwarnings("ignore")
    runners = {"whatstk": _load_whatstk_auto(), "chat-miner": _load_chatminer()}
    lines = []
    for path in sorted(folder.glob("*.txt")):
        for name, run in runners.items():
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                    io.StringIO()
                ):
                    run(str(path))
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                lines.append(f"- {name} failed on `{path.name}`: {type(error).__name__}")
    return lines


def _load_whatstk_auto() -> Callable[[str], int]:
    from whatstk import WhatsAppChat

    def run(path: str) -> int:
        return len(WhatsAppChat.from_source(filepath=path).df)

    return run


def machine() -> str:
    """Describe the CPU and Python version of this machine."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        lscpu = ""
    fields = dict(
        line.split(":", 1) for line in lscpu.splitlines() if ":" in line
    )
    model = fields.get("Model name", platform.processor() or "unknown CPU").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    return f"{model}, {cpus} CPUs, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def _cell(result: dict[str, object]) -> tuple[str, str]:
    if "error" in result:
        return "failed", str(result["error"])
    rate = float(result["messages"]) / float(result["seconds"])  # type: ignore[arg-type]
    return f"{rate:,.0f}", f"{float(result['peak_mib']):.0f}"  # type: ignore[arg-type]


def table(results: dict[int, dict[str, dict[str, object]]]) -> list[str]:
    """Render the results as Markdown table rows."""
    rows = [
        "| messages | parser | messages parsed | seconds | messages/s | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size, by_parser in results.items():
        for name, result in by_parser.items():
            if "error" in result:
                rows.append(f"| {size:,} | {name} | – | – | failed: {result['error']} | – |")
                continue
            rate, peak = _cell(result)
            rows.append(
                f"| {size:,} | {name} | {result['messages']:,} | "
                f"{float(result['seconds']):.2f} | {rate} | {peak} |"  # type: ignore[arg-type]
            )
    return rows


def speedups(results: dict[int, dict[str, dict[str, object]]]) -> list[str]:
    """Compare our rate with the faster peer for each size."""
    lines = []
    for size, by_parser in results.items():
        ours = by_parser["wallie"]
        peers = [r for n, r in by_parser.items() if n not in OURS and "error" not in r]
        if "error" in ours or not peers:
            continue
        rate = lambda r: float(r["messages"]) / float(r["seconds"])  # noqa: E731
        best = max(rate(peer) for peer in peers)
        failed = [n for n, r in by_parser.items() if n not in OURS and "error" in r]
        note = f" ({', '.join(failed)} failed)" if failed else ""
        lines.append(
            f"- {size:,} messages: {rate(ours) / best:.1f} times the faster peer{note}"
        )
    return lines


def write_docs(section: str) -> None:
    """Replace or append the "WhatsApp parsing" section of docs/benchmarks.md."""
    text = DOCS.read_text("utf-8") if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(TITLE)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    section = section.rstrip("\n") + "\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text.rstrip("\n") + "\n", "utf-8")


def main() -> None:
    """Generate the exports, run every parser on each and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="comma-separated export sizes, in messages",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help="runs of each parser on each file; the fastest counts",
    )
    parser.add_argument("--worker", nargs=2, metavar=("PARSER", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    load_before = os.getloadavg()[0]
    sizes = [int(size) for size in args.sizes.split(",")]
    OUT.mkdir(exist_ok=True)
    results: dict[int, dict[str, dict[str, object]]] = {}
    for size in sizes:
        path = OUT / f"whatsapp_{size}.txt"
        if not path.exists():
            generate(path, size)
        runs: dict[str, list[dict[str, object]]] = {name: [] for name in PARSERS}
        for _ in range(args.runs):
            # Parsers take turns, so a busy spell on the machine hits them alike.
            for name in PARSERS:
                if runs[name] and "error" in runs[name][-1]:
                    continue
                runs[name].append(measure(name, path))
                print(f"{size:>9,} {name:<10} {runs[name][-1]}", flush=True)
        results[size] = {name: fastest(runs[name]) for name in PARSERS}

    rows = table(results)
    print("\n".join(rows))
    command = "python benchmarks/whatsapp_parse.py" + (
        "" if tuple(sizes) == DEFAULT_SIZES else f" --sizes {args.sizes}"
    ) + ("" if args.runs == DEFAULT_RUNS else f" --runs {args.runs}")
    section = "\n".join(
        [
            TITLE,
            "",
            "Parse rate (imports excluded) and peak memory on generated Android exports "
            "(`dd/mm/yyyy, HH:mm - Name: text`, one message in 20 on two lines, "
            "one in 50 a media placeholder). Each parser runs in its own "
            f"subprocess, {args.runs} times per file in turns, and the fastest run "
            "counts. Peak RSS is the highest `ru_maxrss` of those processes, "
            "interpreter and imports included. whatstk gets the header format, so "
            "it skips its format detection. `wallie` runs with its C extension, "
            "`wallie-python` with the extension switched off, as on a machine "
            "without a C compiler.",
            "",
            f"- Command: `{command}`",
            f"- Machine: {machine()}",
            f"- Date: {datetime.date.today().isoformat()}",
            "- Load average (1 min) before and after the runs: "
            f"{load_before:.1f} and {os.getloadavg()[0]:.1f}",
            "",
            *rows,
            "",
            *speedups(results),
            "",
            "Peers on the real exports of the test corpus (the folder that "
            "`WALLIE_CORPUS` sets for the tests), with format detection on:",
            "",
            *(peer_corpus_check(CORPUS / "whatsapp") or ["- corpus not found, not checked"]),
        ]
    )
    write_docs(section + "\n")


if __name__ == "__main__":
    main()
