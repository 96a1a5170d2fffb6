"""Measure the offline analyzer on the labelled conversations and write docs/quality.md.

A found reminder matches an expected one when it cites the same message, is
due within the set's tolerance and its text contains the expected keywords.
Scores from :func:`wallie.analysis.scoring.score_contact` are ranked against
the hot labels.

Run: ``python benchmarks/analysis_quality.py [--data PATH] [--output PATH]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from wallie.analysis import OfflineAnalyzer
from wallie.analysis.evaluation import (
    LabelledSet,
    QualityReport,
    evaluate,
    load_labelled,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "tests" / "analysis" / "data" / "conversations.json"
DEFAULT_OUTPUT = ROOT / "docs" / "quality.md"
COMMAND = "python benchmarks/analysis_quality.py"


def _misses(title: str, rows: list[tuple[str, int, str]]) -> list[str]:
    if not rows:
        return [f"{title}: none.", ""]

    lines = [f"{title}:", ""]
    lines += [
        f"- `{name}`, message {message_id}, due {due}" for name, message_id, due in rows
    ]
    return [*lines, ""]


def render(labelled: LabelledSet, report: QualityReport, data: Path) -> str:
    """Return the Markdown page for a report."""
    languages = Counter(item.conversation.language for item in labelled.conversations)
    expected = sum(len(item.expected) for item in labelled.conversations)
    hot = sum(1 for item in labelled.conversations if item.hot)
    tolerance = int(labelled.tolerance.total_seconds() // 60)
    today = datetime.now(UTC).date().isoformat()
    found = report.true_positives + len(report.false_positives)
    per_language = ", ".join(
        f"{language} {count}" for language, count in sorted(languages.items())
    )
    lines = [
        "# Analysis quality",
        "",
        "Offline analyzer on the labelled conversations written for the project.",
        "",
        f"- Command: `{COMMAND}`",
        f"- Date: {today}",
        f"- Data: `{data.relative_to(ROOT)}`: {len(labelled.conversations)} "
        f"conversations ({per_language}), "
        f"{expected} expected reminders, {hot} hot contacts",
        "",
        "## Reminders",
        "",
        "A found reminder matches an expected one when it cites the same message, is "
        "due "
        f"within {tolerance} minutes of the labelled local time, and its text contains "
        "every labelled keyword (case and accents ignored).",
        "",
        f"- Found: {found}, matched: {report.true_positives}",
        f"- Precision: {report.precision:.2f}",
        f"- Recall: {report.recall:.2f}",
        "",
        *_misses("False positives", report.false_positives),
        *_misses("Missed reminders", report.false_negatives),
        "## Lead scores",
        "",
        "Scores from `score_contact` over the offline signals, ranked against the hot "
        "labels.",
        "",
        f"- ROC AUC (hot against not hot, ties count half): {report.roc_auc:.2f}",
        f"- Precision at k = {hot} (the number of hot contacts): "
        f"{report.precision_at_k:.2f}",
        "",
        "The set was written together with the rules, so these figures are an upper "
        "bound for real conversations; they catch regressions, not the accuracy on "
        "users' messages.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Evaluate, print the figures and write the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="Labelled JSON file."
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="Page to write."
    )
    arguments = parser.parse_args()

    labelled = load_labelled(arguments.data)
    report = evaluate(OfflineAnalyzer(), labelled)
    page = render(labelled, report, arguments.data.resolve())
    arguments.output.write_text(page, encoding="utf-8")
    print(page)


if __name__ == "__main__":
    main()
