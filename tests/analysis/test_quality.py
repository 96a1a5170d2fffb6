"""Offline analyzer on the labelled conversations.

The thresholds sit a little below the figures measured when the set was
written (precision 1.00, recall 1.00, ROC AUC 1.00), so that a rule change
that costs a case or two fails here. ``benchmarks/analysis_quality.py``
prints the figures and the misses.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from wallie.analysis import OfflineAnalyzer
from wallie.analysis.evaluation import (
    LabelledSet,
    QualityReport,
    evaluate,
    load_labelled,
)

DATA = Path(__file__).parent / "data" / "conversations.json"


@pytest.fixture(scope="module")
def labelled() -> LabelledSet:
    return load_labelled(DATA)


@pytest.fixture(scope="module")
def report(labelled: LabelledSet) -> QualityReport:
    return evaluate(OfflineAnalyzer(), labelled)


def test_labelled_set_covers_five_languages(labelled: LabelledSet) -> None:
    languages = Counter(item.conversation.language for item in labelled.conversations)

    assert len(labelled.conversations) >= 40
    assert set(languages) == {"en", "es", "pt", "de", "fr"}
    assert min(languages.values()) >= 8
    assert sum(1 for item in labelled.conversations if not item.expected) >= 15
    assert sum(1 for item in labelled.conversations if item.hot) >= 15


def test_labelled_reminder_precision(report: QualityReport) -> None:
    assert report.precision >= 0.9, report.false_positives


def test_labelled_reminder_recall(report: QualityReport) -> None:
    assert report.recall >= 0.9, report.false_negatives


def test_labelled_hot_ranking(report: QualityReport) -> None:
    assert report.roc_auc >= 0.9
    assert report.precision_at_k >= 0.8


@pytest.mark.parametrize(
    "name",
    [
        "en-small-talk",
        "en-passing-dates",
        "es-small-talk",
        "es-passing-dates",
        "pt-small-talk",
        "pt-passing-dates",
        "de-small-talk",
        "de-passing-dates",
        "fr-small-talk",
        "fr-passing-dates",
    ],
)
def test_labelled_negatives_have_no_reminders(report: QualityReport, name: str) -> None:
    assert [row for row in report.false_positives if row[0] == name] == []
