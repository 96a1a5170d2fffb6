"""Read a block of an export in bulk when every header has the main shape.

Most blocks of a real export hold nothing but headers of the main shape,
senders, plain bodies and a few continuation lines. For those, one
``re.split`` over the whole block lists the date, time, sender and body of
every message, and a tight loop turns them into messages with cached dates,
times and senders. Anything unusual goes to the line-aware reading of
:class:`~wallie.whatsapp.parser.ParsedExport`, which produces the same
messages more slowly:

- a block with a line that starts like a header of any other shape goes
  there whole;
- from a header whose date or time is invalid, the rest of the block goes
  there;
- a message without a sender, one that may be a notice, or one with a
  media placeholder, a marker or a location is built there.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import re
from collections.abc import Generator, Iterable, Iterator
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from wallie.settings import get_settings
from wallie.whatsapp.header import (
    ANY_HEADER,
    CLOCK,
    HeaderShape,
    date_from_fields,
    exact_header,
    time_from_match,
)
from wallie.whatsapp.model import ParsedMessage
from wallie.whatsapp.patterns import (
    MARKER_LAST,
    MAX_NOTICE_LENGTH,
    NOTICE_CASE_TRAPS,
    NOTICE_FIRST,
    NOTICE_LAST,
    NOTICE_WORDS,
    PLACEHOLDER_LAST,
    SHORT_NOTICE,
    SHORT_NOTICE_LAST,
    SHORT_NOTICE_LENGTH,
    sender_system_event,
    special_body,
)

try:
    from wallie.whatsapp import _speedups
except ImportError:  # installed where no C compiler was found
    _speedups = None

if TYPE_CHECKING:
    from wallie.whatsapp.parser import ParsedExport, _Pass

#: The C versions of the hot loops (``wallie/whatsapp/_speedups.c``), or None
#: to run the Python ones, which give the same messages more slowly. None
#: when the package was installed without a C compiler.
SPEEDUPS = _speedups


def active_speedups() -> Any:
    """Return ``SPEEDUPS``, or None when ``WALLIE_WHATSAPP_C_PARSER`` turns it off."""
    if SPEEDUPS is None or not get_settings().whatsapp_c_parser:
        return None
    return SPEEDUPS

#: Distinct timestamps whose message counts are kept for occurrence indexes.
#: Identical messages share a timestamp, so only nearby ones need counting.
OCCURRENCE_WINDOW = 4096

#: Entries kept in the date, time and sender caches before they are cleared.
CACHE_SIZE = 4096

#: A sender name as :func:`~wallie.whatsapp.parser.split_sender_text` reads
#: it, for the common case of a colon and one ASCII space after it: up to 100
#: characters on the header line, with no colon and no quote.
_SENDER = "(?:([^:\n\"“”«»]{1,100}): )?"

#: Digits of the headers read in bulk. Headers in other digits, such as
#: Arabic-Indic ones, match ``ANY_HEADER`` instead, so their blocks are read
#: line by line.
_DIGIT = "[0-9]"

_MIDNIGHT = datetime.time()


class Occurrences:
    """Count identical (timestamp, sender, body) triples within a window.

    A triple's index is the number of identical triples before it among the
    messages of the last ``OCCURRENCE_WINDOW`` distinct timestamps, counted
    in the order each timestamp was first seen. A timestamp seen once keeps
    the key material of its message rather than a dictionary of counts. A
    timestamp leaves the window when its insertion number falls behind, and
    the entries that left are deleted in batches. So most messages cost two
    dictionary insertions and no hashing of the material.

    NOTE: A triple that comes back after more than ``OCCURRENCE_WINDOW``
    other timestamps, which needs out-of-order lines, restarts at index 0.

    Attributes:
      inserted: Timestamps inserted so far, counting a timestamp again when it
        comes back after it left the window.
      numbers: Insertion number of each timestamp.
      buckets: The key material of the only message of a timestamp, or the
        counts of each key material, by timestamp.
      purge_at: Value of ``inserted`` at which the entries that left the
        window are deleted.
    """

    __slots__ = ("buckets", "inserted", "numbers", "purge_at")

    def __init__(self) -> None:
        self.inserted = 0
        self.numbers: dict[datetime.datetime, int] = {}
        self.buckets: dict[datetime.datetime, str | dict[str, int]] = {}
        self.purge_at = 2 * OCCURRENCE_WINDOW

    def index(self, timestamp: datetime.datetime, material: str) -> int:
        """Return how many identical triples came before this one."""
        number = self.numbers.get(timestamp)
        if number is None or number <= self.inserted - OCCURRENCE_WINDOW:
            self.insert(timestamp, material)
            return 0

        return self.count(timestamp, material)

    def insert(self, timestamp: datetime.datetime, material: str) -> None:
        """Start the window entry of a timestamp not in the window."""
        self.inserted += 1
        self.numbers[timestamp] = self.inserted
        self.buckets[timestamp] = material
        if self.inserted >= self.purge_at:
            self.purge()

    def count(self, timestamp: datetime.datetime, material: str) -> int:
        """Count a message of a timestamp in the window and return its index."""
        bucket = self.buckets[timestamp]
        if isinstance(bucket, str):
            if bucket == material:
                self.buckets[timestamp] = {material: 2}
                return 1
            self.buckets[timestamp] = {bucket: 1, material: 1}
            return 0

        index = bucket.get(material, 0)
        bucket[material] = index + 1
        return index

    def purge(self) -> None:
        """Delete the entries of timestamps that left the window."""
        oldest = self.inserted - OCCURRENCE_WINDOW
        gone = [stamp for stamp, number in self.numbers.items() if number <= oldest]
        for stamp in gone:
            del self.numbers[stamp]
            del self.buckets[stamp]
        self.purge_at = self.inserted + OCCURRENCE_WINDOW


def new_occurrences() -> Occurrences:
    """Return an empty count of identical messages, kept in C when the C code is on.

    The C one gives the same indexes and is the one the C message loop needs.
    """
    speedups = active_speedups()
    if speedups is not None:
        return speedups.Occurrences(OCCURRENCE_WINDOW)  # type: ignore[no-any-return]
    return Occurrences()


class _Layout:
    """A plain class with the slots of :class:`ParsedMessage`, in its order.

    Setting the fields of one and then its ``__class__`` to ``ParsedMessage``
    gives the same object as the frozen dataclass's ``__init__``, which sets
    each field through ``object.__setattr__``. It took about a quarter of
    the time in a CPython 3.11 measurement. CPython allows the assignment
    because both classes add the same slots to ``object``.
    """

    __slots__ = ParsedMessage.__slots__


def _check_layout() -> None:
    """Raise RuntimeError when ``_Layout`` no longer mirrors ``ParsedMessage``."""
    expected = ParsedMessage(
        datetime.datetime(2020, 1, 1), "a", None, "b", "chat", key="k", line_number=1
    )
    probe = object.__new__(_Layout)
    for name in ParsedMessage.__slots__:
        setattr(probe, name, getattr(expected, name))
    try:
        probe.__class__ = ParsedMessage  # type: ignore[assignment]
    except TypeError as error:
        raise RuntimeError("ParsedMessage slots changed; update _Layout.") from error

    if probe != expected:
        raise RuntimeError("ParsedMessage fields changed; update _Layout.")


_check_layout()


@functools.lru_cache(maxsize=16)
def bulk_pattern(shape: HeaderShape) -> re.Pattern[str]:
    """Compile the pattern that splits a block, prefixed with LF, at its headers.

    Returns:
      A pattern whose ``split`` gives the text before the first header, then
      four items per header: date, time, sender name and the text up to the
      next header. The sender name is None when the text after the header
      does not start with a name, a colon and a space. A line that starts
      like a header of any other shape, or in other digits, is a match with
      date None.
    """
    return re.compile(f"\n(?:{exact_header(shape, digit=_DIGIT)}{_SENDER}|{ANY_HEADER})")


class BulkReader:
    """Turn blocks of an export into messages, in bulk where it is safe.

    Parameters:
      export: The export being read, whose line-aware methods handle what
        the bulk reading leaves out.
    """

    def __init__(self, export: ParsedExport) -> None:
        self._export = export
        self._shape = export.shape
        self._speedups = active_speedups()
        self._separator = export.shape.separator
        self._date_order = export.date_order
        # Date text to midnight and ISO date, or None when invalid.
        self._days: dict[str, tuple[datetime.datetime, str] | None] = {}
        # Time text to time since midnight, ISO time and whether the clock is
        # anomalous, or None when invalid.
        self._clocks: dict[str, tuple[datetime.timedelta, str, bool] | None] = {}
        # What the C loop needs, in the order bulk_messages reads it.
        self._context = (
            self._days, self._clocks, self._stamp, self._sender, export._build,
            special_body, sender_system_event, SHORT_NOTICE.fullmatch, MARKER_LAST,
            SHORT_NOTICE_LAST, NOTICE_FIRST, NOTICE_LAST, PLACEHOLDER_LAST,
            NOTICE_WORDS, NOTICE_CASE_TRAPS, ParsedMessage, SHORT_NOTICE_LENGTH,
            MAX_NOTICE_LENGTH, export._media, export._link,
        )

    def read(self, text: str, state: _Pass) -> Iterable[ParsedMessage]:
        """Return the messages completed in a block of LF-terminated lines.

        With the C functions, most blocks give a list, made at once, so that
        the caller's ``yield from`` hands each message on without resuming
        another generator. The other blocks give an iterator.

        Parameters:
          text: Whole lines, each ending with LF, without format marks.
          state: The pass, updated with the message still pending at the end.
        """
        parts = None
        if self._speedups is not None:
            parts = self._speedups.split_block(text, self._shape)
        if parts is None:
            # Where the C split gives up, the regex may still read the block,
            # so both paths read every block alike.
            # Compiled on first use: with the C split, most exports never
            # need it.
            parts = bulk_pattern(self._shape).split("\n" + text)
            if len(parts) == 1 or None in parts[1::4]:
                parts = None
        if parts is None:
            return self._export._read_block(text, state)

        first_line = state.number + 1
        if parts[0]:
            # Lines before the first header continue the pending message, or
            # did not parse: the line-aware reading handles them, and yields
            # nothing because they hold no header.
            for _ in self._export._read_block(parts[0][1:] + "\n", state):
                raise AssertionError("lines before the first header gave a message")

        parts[-1] = parts[-1][:-1]
        if self._stamp(parts[1], parts[2]) is None:
            # The line-aware reading ends the pending message and reports the
            # header.
            return self._resume(text, first_line, state.number + 1, state)

        pending = []
        if state.pending is not None:
            pending.append(self._export._build(*state.pending, "\n".join(state.parts), state))
            state.pending = None
            state.parts = []

        if self._speedups is None:
            return itertools.chain(pending, self._python_messages(text, first_line, parts, state))

        messages, resume = self._c_messages(parts, state)
        if pending:
            messages[:0] = pending
        if resume is None:
            return messages
        return itertools.chain(messages, self._resume(text, first_line, resume, state))

    def _python_messages(
        self, text: str, first_line: int, parts: list[str], state: _Pass
    ) -> Iterator[ParsedMessage]:
        """Yield the messages of a split block from the Python loop, then the rest."""
        resume = yield from self._messages(parts, state)
        if resume is not None:
            yield from self._resume(text, first_line, resume, state)

    def _resume(
        self, text: str, first_line: int, line: int, state: _Pass
    ) -> Iterator[ParsedMessage]:
        """Read the block from line ``line`` on with the line-aware reading."""
        start = 0
        for _ in range(line - first_line):
            start = text.index("\n", start) + 1
        state.number = line - 1
        return self._export._read_block(text[start:], state)

    def _stamp(
        self, date_text: str, clock_text: str
    ) -> tuple[datetime.datetime, str, bool] | None:
        """Return the timestamp, ISO timestamp and clock anomaly of a header.

        Returns None when the date or the time is invalid.
        """
        day = self._days.get(date_text)
        if day is None:
            day = self._day(date_text)
        clock = self._clocks.get(clock_text)
        if clock is None:
            clock = self._clock(clock_text)
        if day is None or clock is None:
            return None

        return day[0] + clock[0], f"{day[1]}T{clock[1]}", clock[2]

    def _day(self, date_text: str) -> tuple[datetime.datetime, str] | None:
        if len(self._days) > CACHE_SIZE:
            self._days.clear()
        if date_text in self._days:
            return None

        d1, d2, d3 = date_text.split(self._separator)
        date = date_from_fields(d1, d2, d3, self._date_order)
        day = None
        if date is not None:
            day = (datetime.datetime.combine(date, _MIDNIGHT), date.isoformat())
        self._days[date_text] = day
        return day

    def _clock(self, clock_text: str) -> tuple[datetime.timedelta, str, bool] | None:
        if len(self._clocks) > CACHE_SIZE:
            self._clocks.clear()
        if clock_text in self._clocks:
            return None

        # The C reading takes 24-hour times in ASCII digits, most of them,
        # and leaves the others to the regex.
        clock = self._speedups.plain_clock(clock_text) if self._speedups else None
        if clock is not None:
            self._clocks[clock_text] = clock
            return clock

        match = CLOCK.fullmatch(clock_text)
        assert match is not None
        time, anomaly = time_from_match(match)
        if time is not None:
            since_midnight = datetime.timedelta(
                hours=time.hour, minutes=time.minute, seconds=time.second
            )
            clock = (since_midnight, time.isoformat(), anomaly)
        self._clocks[clock_text] = clock
        return clock

    def _messages(
        self, parts: list[str], state: _Pass
    ) -> Generator[ParsedMessage, None, int | None]:
        """Yield the messages of a split block, one at a time.

        The last message stays pending in ``state``, as the line-aware reading
        leaves it, because the next block may continue it.

        Returns:
          None, or the line of a header whose date or time is invalid, from
          which the line-aware reading takes over.

        Note:
          This is the hot loop of the parser. Everything it calls per message
          is bound to a local name first, and the key and occurrence index are
          computed inline, as :meth:`ParsedExport._build` computes them.
        """
        report = state.report
        build = self._export._build
        days = self._days
        clocks = self._clocks
        senders = state.senders
        occurrences = state.occurrences
        numbers = occurrences.numbers
        buckets = occurrences.buckets
        new_object = object.__new__
        layout = _Layout
        parsed_message = ParsedMessage
        hash_of = sha256
        marker_last = MARKER_LAST
        short_notice_last = SHORT_NOTICE_LAST
        notice_first = NOTICE_FIRST
        notice_last = NOTICE_LAST
        window = OCCURRENCE_WINDOW
        line = state.number + 1
        continuation = 0
        plain = 0
        broke = False
        items = iter(parts[1:-4])
        for date_text, clock_text, name, piece in zip(items, items, items, items):
            day = days.get(date_text)
            clock = clocks.get(clock_text)
            if day is None or clock is None:
                if self._stamp(date_text, clock_text) is None:
                    broke = True
                    break
                day = days[date_text]
                clock = clocks[clock_text]
                assert day is not None and clock is not None
            stamp = day[0] + clock[0]
            if clock[2]:
                report.clock_anomalies += 1

            number = line
            if "\n" in piece:
                lines = piece.count("\n")
                continuation += lines
                line += lines + 1
                body = "\n".join([part.rstrip() for part in piece.split("\n")]).rstrip()
            else:
                line += 1
                body = piece.rstrip()

            if name is None:
                yield build(number, stamp, day[1] + "T" + clock[1], piece, state)
                continue

            end = body[-1:]
            if (
                "\n" in body
                or end in marker_last
                or (len(body) < SHORT_NOTICE_LENGTH and end in short_notice_last)
                or (":" in body and ": http" in body)
            ) and special_body(body) is not None:
                iso = f"{day[1]}T{clock[1]}"
                yield build(number, stamp, iso, f"{name}: {piece}", state)
                continue

            # The guard of sender_system_event, with the cheap tests first.
            if (
                body[:1] in notice_first
                or end in notice_last
                or (("g" in body or "G" in body) and ("d " in body or "D " in body))
            ) and sender_system_event(body) is not None:
                iso = f"{day[1]}T{clock[1]}"
                yield build(number, stamp, iso, f"{name}: {piece}", state)
                continue

            sender = senders.get(name)
            if sender is None:
                sender = self._sender(name, state)
            material = f"{day[1]}T{clock[1]}\x1f{sender[2]}\x1f{body}"
            inserted = numbers.get(stamp)
            if inserted is None or inserted <= occurrences.inserted - window:
                inserted = occurrences.inserted = occurrences.inserted + 1
                numbers[stamp] = inserted
                buckets[stamp] = material
                if inserted >= occurrences.purge_at:
                    occurrences.purge()
                index = 0
            else:
                index = occurrences.count(stamp, material)
            key = hash_of(f"{material}\x1f{index}".encode()).hexdigest()
            message = new_object(layout)
            message.timestamp = stamp
            message.sender = sender[0]
            message.sender_phone = sender[1]
            message.text = body
            message.kind = "chat"
            message.system_event = None
            message.attachments = ()
            message.is_deleted = False
            message.is_edited = False
            message.is_location = False
            message.key = key
            message.line_number = number
            message.__class__ = parsed_message  # type: ignore[assignment]
            yield message  # type: ignore[misc]
            plain += 1

        return self._end_block(parts, state, line, continuation, plain, broke)

    def _c_messages(
        self, parts: list[str], state: _Pass
    ) -> tuple[list[ParsedMessage], int | None]:
        """Do what :meth:`_messages` does, in C, and return the messages as a list.

        Returns:
          The messages, and None or the line from which the line-aware reading
          takes over, as :meth:`_messages` returns it.
        """
        messages, line, continuation, plain, anomalies, media, broke = (
            self._speedups.bulk_messages(parts, state.number + 1, state, self._context)
        )
        state.report.clock_anomalies += anomalies
        state.report.media += media
        return messages, self._end_block(parts, state, line, continuation, plain, broke)

    def _end_block(
        self,
        parts: list[str],
        state: _Pass,
        line: int,
        continuation: int,
        plain: int,
        broke: bool,
    ) -> int | None:
        """Update the pass after the loop over a split block, in Python or in C.

        Parameters:
          line: Line of the header after the last message built.
          continuation: Continuation lines of the messages built.
          plain: Messages built without :meth:`ParsedExport._build`.
          broke: True when the loop stopped at the header on ``line``, whose
            date or time is invalid.

        Returns:
          None, or ``line`` when the line-aware reading takes over from it.
        """
        resume = line if broke else self._keep_last(parts[-4:], line, state)
        if not broke:
            line = state.number + 1

        report = state.report
        report.messages += plain
        report.continuation_lines += continuation
        state.seen_header = True
        state.number = line - 1
        return resume

    def _keep_last(self, last: list[str], line: int, state: _Pass) -> int | None:
        """Leave the last message of a block pending in ``state``.

        Returns:
          None, or ``line`` when the header's date or time is invalid.
        """
        date_text, clock_text, name, piece = last
        found = self._stamp(date_text, clock_text)
        if found is None:
            state.number = line - 1
            return line

        stamp, iso, anomaly = found
        if anomaly:
            state.report.clock_anomalies += 1
        lines = piece.count("\n")
        state.report.continuation_lines += lines
        state.pending = (line, stamp, iso)
        state.parts = [piece if name is None else f"{name}: {piece}"]
        state.number = line + lines
        return None

    def _sender(self, name: str, state: _Pass) -> tuple[str, str | None, str]:
        """Read a sender name for this pass: display name, E.164 number, key part.

        The key part is the number when there is one, else the display name.
        """
        if len(state.senders) > CACHE_SIZE:
            state.senders.clear()
        display, phone, label = self._export._sender(name)
        state.participants.add(label)
        sender = state.senders[name] = (display, phone, phone or display)
        return sender

