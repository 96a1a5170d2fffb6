"""``wallie-cli transcribe``: check what the transcriber makes of an audio file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wallie.audio.engines import ENGINE_CHOICES, build_transcriber, resolve_engine
from wallie.audio.errors import TranscriptionError
from wallie.audio.types import Transcript

from .common import RET_FAILURE, CliContext, echo_json, fail, json_option, pass_context


def transcript_as_dict(path: Path, transcript: Transcript) -> dict[str, Any]:
    """Return a transcript as the stable mapping of ``transcribe --json``."""
    return {
        "path": str(path),
        "status": str(transcript.status),
        "text": transcript.text,
        "engine": transcript.engine,
        "model": transcript.model,
        "language": transcript.language,
        "duration_s": round(transcript.duration_s, 2),
        "segments": transcript.segments,
        "note": transcript.note,
        "requests": transcript.usage.requests,
        "cost_usd": str(transcript.usage.cost_usd),
    }


@click.command(short_help="Transcribe an audio file and print the text.")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
)
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="Speech-to-text engine: auto uses WALLIE_TRANSCRIPTION_ENGINE, whose auto "
    "means openai when OPENAI_API_KEY is set and offline otherwise.",
)
@click.option(
    "--language",
    metavar="CODE",
    help="Spoken language as an ISO 639-1 code such as en or pt-BR. Default: the "
    "offline engine assumes English and OpenAI detects it.",
)
@json_option
@pass_context
def transcribe_command(
    obj: CliContext, path: Path, engine: str, language: str | None, as_json: bool
) -> None:
    """Transcribe the audio file PATH and print the text, engine, language and duration.

    Nothing is stored.  With the openai engine the request is billed to the
    configured key, but not recorded in any user's usage.  A file that cannot
    be transcribed exits with status 1 and the reason.
    """
    name = resolve_engine(engine, obj.settings)
    transcriber = build_transcriber(name, obj.settings)
    try:
        transcript = transcriber.transcribe(path, language=language)
    except TranscriptionError as error:
        if as_json:
            echo_json(
                {
                    "path": str(path),
                    "status": "failed",
                    "engine": name,
                    "error": str(error),
                }
            )
        fail(str(error), RET_FAILURE)
        return

    if as_json:
        echo_json(transcript_as_dict(path, transcript))
        return

    click.echo(transcript.text or f"({transcript.status}) {transcript.note}")
    click.echo()
    click.echo(f"status:   {transcript.status}")
    click.echo(f"engine:   {transcript.engine} ({transcript.model})")
    click.echo(f"language: {transcript.language or 'unknown'}")
    click.echo(f"duration: {transcript.duration_s:.1f} s")
    if transcript.usage.requests:
        usage = transcript.usage
        click.echo(f"cost:     ${usage.cost_usd} for {usage.requests} requests")
