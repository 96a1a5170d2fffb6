"""Choose and build a transcriber from configuration values."""

from __future__ import annotations

from wallie.audio.limits import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_SIZE_BYTES
from wallie.audio.offline import PocketSphinxTranscriber
from wallie.audio.openai_engine import DEFAULT_MODEL, OpenAITranscriber
from wallie.audio.types import Transcriber

#: Engine names that :func:`make_transcriber` accepts.
ENGINES = ("offline", "openai")


def make_transcriber(
    engine: str | None,
    api_key: str | None,
    base_url: str | None = None,
    model: str | None = None,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES,
) -> Transcriber:
    """Build the transcriber for an engine name.

    Parameters:
      engine: ``"offline"``, ``"openai"``, or ``None`` for ``"openai"`` when
        ``api_key`` is set and ``"offline"`` otherwise.
      api_key: The OpenAI API key, or ``None``.
      base_url: The OpenAI-compatible API address, or ``None`` for the client
        library's default.
      model: The OpenAI transcription model, or ``None`` for
        :data:`wallie.audio.openai_engine.DEFAULT_MODEL`; ignored offline.
      max_duration_s: The maximum accepted audio duration, in seconds.
      max_size_bytes: The maximum accepted file size, in bytes.

    Returns:
      The transcriber.

    Raises:
      ValueError: ``engine`` is not a known name, or it is ``"openai"`` and
        ``api_key`` is missing.
    """
    name = engine.strip().lower() if engine is not None else None
    if name is None:
        name = "openai" if api_key else "offline"
    if name not in ENGINES:
        raise ValueError(
            f"Unknown transcription engine {engine!r}; valid engines are "
            f"{', '.join(repr(known) for known in ENGINES)}."
        )

    if name == "offline":
        return PocketSphinxTranscriber(
            max_duration_s=max_duration_s, max_size_bytes=max_size_bytes
        )
    if not api_key:
        raise ValueError(
            "The 'openai' transcription engine needs an API key; set OPENAI_API_KEY "
            "or choose the 'offline' engine."
        )

    return OpenAITranscriber(
        api_key=api_key,
        base_url=base_url,
        model=model or DEFAULT_MODEL,
        max_duration_s=max_duration_s,
        max_size_bytes=max_size_bytes,
    )
