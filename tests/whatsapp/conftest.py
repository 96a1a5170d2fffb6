"""Fixtures for the WhatsApp parser tests: the corpus folder next to the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Corpus of real exports, ``../shared/corpus`` next to the repository unless
#: ``WALLIE_CORPUS`` names another folder.
CORPUS = Path(
    os.environ.get("WALLIE_CORPUS")
    or Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
)


@pytest.fixture(scope="session")
def whatsapp_corpus() -> Path:
    """Return the folder of WhatsApp exports, skipping when it is absent."""
    folder = CORPUS / "whatsapp"
    if not folder.is_dir():
        pytest.skip(f"WhatsApp corpus not found at {folder}; set WALLIE_CORPUS.")
    return folder
