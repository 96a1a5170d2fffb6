"""Measure the offline transcriber's word error rate and real-time factor.

The script speaks short sales sentences with espeak-ng, encodes each one to
Ogg/Opus at 48 kHz, transcribes it with the offline PocketSphinx engine and
compares the transcript with the sentence.  It reports the real-time factor
(processing seconds per audio second) and the word error rate (word-level edit
distance divided by the reference word count), per sentence and overall.
With ``--other-languages`` it also runs Spanish, Brazilian Portuguese and
German sentences through the English model, to show what the engine would
produce on them.  The figures go to the "Offline transcription" section of
docs/benchmarks.md.

Run: .venv/bin/python benchmarks/transcription_offline.py [--other-languages]
     [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import soundfile

from wallie.audio import PocketSphinxTranscriber
from wallie.audio.resample import PolyphaseResampler

#: espeak-ng voice and speed (words per minute) of the English sentences.
VOICE = "en-us+f2"
WORDS_PER_MINUTE = 140

#: Sample rate of the Opus files, in hertz; WhatsApp voice notes use 48 kHz.
OPUS_RATE = 48_000

#: Silence before and after each sentence, in seconds, as in a voice note.
LEAD_S = 0.5

ENGLISH = [
    "I will send you the quote tomorrow morning",
    "I will confirm the order on Friday",
    "Please call me back next week about the contract",
    "The price is ten thousand dollars",
    "We can deliver the order on Monday",
    "Can you send me the invoice today",
    "I will call the client after lunch",
    "The meeting is moved to Thursday afternoon",
    "Let me know if you need a discount",
    "We signed the contract this morning",
    "I need the samples by the end of the month",
    "Remind me to email the new customer",
]

#: Sentences in other languages, keyed by espeak-ng voice.
OTHER_LANGUAGES = {
    "es": [
        "Te envío el presupuesto mañana por la mañana",
        "Confirmo el pedido el viernes",
        "Llámame la próxima semana",
    ],
    "pt-br": [
        "Vou enviar o orçamento amanhã de manhã",
        "Confirmo o pedido na sexta-feira",
        "Me ligue na próxima semana",
    ],
    "de": [
        "Ich schicke dir morgen früh das Angebot",
        "Ich bestätige die Bestellung am Freitag",
        "Ruf mich nächste Woche an",
    ],
}

SECTION = "## Offline transcription"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Result:
    """Measurement of one sentence."""

    voice: str
    reference: str
    hypothesis: str
    audio_s: float
    processing_s: float
    cpu_s: float
    errors: int
    words: int

    @property
    def real_time_factor(self) -> float:
        """Processing seconds per audio second."""
        return self.processing_s / self.audio_s

    @property
    def word_error_rate(self) -> float:
        """Word edits per reference word."""
        return self.errors / self.words


def words_of(text: str) -> list[str]:
    """Split text into lower-case words without punctuation."""
    return _WORD.findall(text.lower())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Return the Levenshtein distance between two word lists.

    Parameters:
      reference: The words that were spoken.
      hypothesis: The words that were recognised.

    Returns:
      The minimum number of substitutions, deletions and insertions.
    """
    previous = list(range(len(hypothesis) + 1))
    for row, spoken in enumerate(reference, start=1):
        current = [row]
        for column, recognised in enumerate(hypothesis, start=1):
            substitution = previous[column - 1] + (spoken != recognised)
            current.append(
                min(previous[column] + 1, current[column - 1] + 1, substitution)
            )
        previous = current

    return previous[-1]


def synthesize(program: str, voice: str, text: str, folder: Path, name: str) -> Path:
    """Speak ``text`` with espeak-ng and write it as 48 kHz Ogg/Opus."""
    wav = folder / f"{name}.wav"
    command = [program, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(wav), text]
    subprocess.run(command, check=True, capture_output=True)
    samples, rate = soundfile.read(wav, dtype="float64")
    resampler = PolyphaseResampler(rate, OPUS_RATE)
    speech = np.concatenate([resampler.process(samples), resampler.flush()])
    lead = np.zeros(int(LEAD_S * OPUS_RATE))
    opus = folder / f"{name}.opus"
    audio = np.concatenate([lead, speech, lead])
    soundfile.write(opus, audio, OPUS_RATE, format="OGG", subtype="OPUS")
    wav.unlink()
    return opus


def measure(
    transcriber: PocketSphinxTranscriber, voice: str, text: str, path: Path
) -> Result:
    """Transcribe one file, forcing the English model, and score it."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    transcript = transcriber.transcribe(path, language=None)
    cpu = time.process_time() - cpu_started
    elapsed = time.perf_counter() - started
    reference = words_of(text)
    hypothesis = words_of(transcript.text)
    return Result(
        voice=voice,
        reference=text,
        hypothesis=transcript.text,
        audio_s=transcript.duration_s,
        processing_s=elapsed,
        cpu_s=cpu,
        errors=edit_distance(reference, hypothesis),
        words=len(reference),
    )


def overall(results: list[Result]) -> tuple[float, float]:
    """Return the pooled real-time factor and word error rate."""
    processing = sum(result.processing_s for result in results)
    audio = sum(result.audio_s for result in results)
    errors = sum(result.errors for result in results)
    words = sum(result.words for result in results)
    return processing / audio, errors / words


def cpu_real_time_factor(results: list[Result]) -> float:
    """Return the pooled CPU seconds of this process per audio second."""
    cpu = sum(result.cpu_s for result in results)
    return cpu / sum(result.audio_s for result in results)


def cpu_model() -> str:
    """Return the CPU model name from lscpu, or the platform's processor name."""
    try:
        output = subprocess.run(
            ["lscpu"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"

    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()

    return platform.processor() or "unknown CPU"


def espeak_version(program: str) -> str:
    """Return espeak-ng's version line, shortened."""
    output = subprocess.run(
        [program, "--version"], check=True, capture_output=True, text=True
    ).stdout
    return output.split("Data at")[0].strip()


def table(results: list[Result]) -> list[str]:
    """Render per-sentence rows as a Markdown table."""
    lines = [
        "| voice | sentence | transcript | audio s | RTF | WER |",
        "|---|---|---|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.voice} | {result.reference} | {result.hypothesis or '(none)'} "
            f"| {result.audio_s:.2f} | {result.real_time_factor:.2f} "
            f"| {result.word_error_rate:.0%} |"
        )

    return lines


def render(
    english: list[Result],
    others: list[Result],
    load_s: float,
    command: str,
    program: str,
) -> str:
    """Render the docs section."""
    rtf, wer = overall(english)
    load = os.getloadavg()[0]
    lines = [
        SECTION,
        "",
        "Word error rate (WER, word-level edit distance over reference words) and "
        "real-time factor (RTF, processing seconds per audio second) of the offline "
        "PocketSphinx engine on sales sentences spoken by espeak-ng and encoded to "
        "48 kHz Ogg/Opus with half a second of silence at each end. The RTF "
        "includes Opus decoding and resampling; loading the model is timed apart.",
        "",
        f"- Command: `{command}`",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Load average while running: {load:.1f} (other processes share the CPUs)",
        f"- Software: pocketsphinx {pocketsphinx_version()} with its bundled en-us "
        f"model, {espeak_version(program)}, voice `{VOICE}` at {WORDS_PER_MINUTE} "
        "words per minute",
        f"- Model load: {load_s:.2f} s, once per transcriber",
        f"- English, {len(english)} sentences: WER {wer:.1%}, RTF {rtf:.2f} "
        f"(CPU time per audio second: {cpu_real_time_factor(english):.2f})",
    ]
    for voice in OTHER_LANGUAGES:
        subset = [result for result in others if result.voice == voice]
        if subset:
            other_rtf, other_wer = overall(subset)
            lines.append(
                f"- {voice} through the English model, {len(subset)} sentences: "
                f"WER {other_wer:.1%}, RTF {other_rtf:.2f}"
            )
    lines += ["", *table(english + others), ""]
    lines.append(
        "Synthetic speech is clean and evenly paced, so real voice notes with "
        "noise, accents and overlapping speakers will likely see a higher error "
        "rate. The wall-clock RTF varies with the load of the machine, while the "
        "CPU time per audio second does much less. A WER near or above 100% for "
        "other languages means the output is unusable, so the engine returns the "
        "`language_unsupported` status for them instead of such text."
    )
    return "\n".join(lines) + "\n"


def pocketsphinx_version() -> str:
    """Return the installed pocketsphinx package version."""
    return version("pocketsphinx")


def write_section(section: str) -> None:
    """Replace or append this benchmark's section in docs/benchmarks.md."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        rest = "" if end == -1 else text[end + 1 :]
        text = text[:start] + section + ("\n" + rest if rest else "")

    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")


def show(result: Result) -> None:
    """Print one sentence's word error rate, reference and transcript."""
    print(f"{result.word_error_rate:6.0%}  {result.reference}  ->  {result.hypothesis}")


def run(
    program: str, folder: Path, other_languages: bool
) -> tuple[list[Result], list[Result], float]:
    """Synthesise, transcribe and score every sentence."""
    transcriber = PocketSphinxTranscriber()
    warm_up = synthesize(program, VOICE, "Hello", folder, "warm-up")
    started = time.perf_counter()
    transcriber.transcribe(warm_up, language="en")
    load_s = time.perf_counter() - started

    english = []
    for number, text in enumerate(ENGLISH):
        path = synthesize(program, VOICE, text, folder, f"en-{number:02d}")
        english.append(measure(transcriber, VOICE, text, path))
        show(english[-1])

    others = []
    if other_languages:
        for voice, sentences in OTHER_LANGUAGES.items():
            for number, text in enumerate(sentences):
                path = synthesize(program, voice, text, folder, f"{voice}-{number:02d}")
                others.append(measure(transcriber, voice, text, path))
                show(others[-1])

    return english, others, load_s


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the figures and update the docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--other-languages",
        action="store_true",
        help="Also run Spanish, Portuguese and German sentences through the model.",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print only; leave the docs alone."
    )
    args = parser.parse_args(argv)

    program = shutil.which("espeak-ng")
    if program is None:
        print(
            "espeak-ng not found; install the Debian package espeak-ng.",
            file=sys.stderr,
        )
        return 1

    with tempfile.TemporaryDirectory(prefix="wallie-stt-") as folder:
        english, others, load_s = run(program, Path(folder), args.other_languages)

    rtf, wer = overall(english)
    cpu_rtf = cpu_real_time_factor(english)
    print(f"English: WER {wer:.1%}, RTF {rtf:.2f}, CPU RTF {cpu_rtf:.2f}")
    print(f"Model load: {load_s:.2f} s")
    command = "python benchmarks/transcription_offline.py"
    if args.other_languages:
        command += " --other-languages"
    section = render(english, others, load_s, command, program)
    if not args.no_write:
        write_section(section)
        print(f"Wrote the {SECTION[3:]!r} section of {DOCS}.")

    return 0


if __name__ == "__main__":
    sys.exit(main())
