"""Pick the transcription engine from settings and reuse built transcribers.

The actor and ``wallie-cli transcribe`` take an engine name of ``auto``,
``offline`` or ``openai``.  ``auto`` defers to ``WALLIE_TRANSCRIPTION_ENGINE``,
whose own ``auto`` means OpenAI when ``OPENAI_API_KEY`` is set and the
offline engine otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from wallie.audio.factory import make_transcriber
from wallie.audio.types import Transcriber
from wallie.errors import ConfigurationError, InvalidArguments
from wallie.settings import Settings

#: Engine names that the actor and the command line accept.
ENGINE_CHOICES = ("auto", "offline", "openai")


def resolve_engine(engine: str, settings: Settings) -> str:
    """Return the engine that a request for ``engine`` runs on.

    Parameters:
      engine: ``auto``, ``offline`` or ``openai``.
      settings: The settings of the process.

    Returns:
      ``offline`` or ``openai``.

    Raises:
      InvalidArguments: ``engine`` is not one of :data:`ENGINE_CHOICES`.
      ConfigurationError: The engine is ``openai`` and ``OPENAI_API_KEY`` is unset.
    """
    if engine not in ENGINE_CHOICES:
        raise InvalidArguments(
            "audio_received",
            f"engine must be one of {', '.join(ENGINE_CHOICES)} (got {engine!r}).",
        )

    name = engine if engine != "auto" else settings.transcription_engine
    if name == "auto":
        name = "openai" if settings.openai_api_key else "offline"

    if name == "openai" and not settings.openai_api_key:
        raise ConfigurationError(
            "OPENAI_API_KEY",
            "The openai transcription engine needs OPENAI_API_KEY; set it or use "
            "the offline engine.",
        )

    return name


def build_transcriber(name: str, settings: Settings) -> Transcriber:
    """Build the ``offline`` or ``openai`` transcriber with the configured limits."""
    return make_transcriber(
        name,
        settings.openai_api_key,
        base_url=settings.openai_base_url,
        model=settings.openai_transcription_model,
        max_duration_s=float(settings.transcription_max_seconds),
        max_size_bytes=settings.transcription_max_bytes,
    )


class TranscriberPool:
    """Idle transcribers per configuration, lent to one caller at a time.

    The offline engine loads its model (seconds of CPU) on first use, and one
    instance runs one file at a time.  So each worker thread borrows its own
    instance and returns it for the next job, which then skips the model load.
    """

    def __init__(self) -> None:
        self._idle: dict[tuple[object, ...], list[Transcriber]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, name: str, settings: Settings) -> Iterator[Transcriber]:
        """Lend an idle transcriber for ``name`` and ``settings``, or build one."""
        key = (
            name,
            settings.openai_api_key,
            settings.openai_base_url,
            settings.openai_transcription_model,
            settings.transcription_max_seconds,
            settings.transcription_max_bytes,
        )
        with self._lock:
            idle = self._idle.setdefault(key, [])
            transcriber = idle.pop() if idle else None

        if transcriber is None:
            transcriber = build_transcriber(name, settings)

        try:
            yield transcriber
        finally:
            with self._lock:
                self._idle[key].append(transcriber)
