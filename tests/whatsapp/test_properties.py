"""Round trips: render generated messages in every header shape and parse them."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallie.whatsapp import parse_export

#: AM/PM markers as written by different locales, as (AM, PM) pairs.
MERIDIEMS = [
    ("AM", "PM"),
    ("am", "pm"),
    ("a. m.", "p. m."),
    ("a.m.", "p.m."),
    ("a.\u00a0m.", "p.\u00a0m."),
    ("\u0635", "\u0645"),
]

#: Spaces written before the AM/PM marker.
MERIDIEM_SPACES = [" ", "\u202f", "\u00a0"]

#: Digit sets: ASCII, Arabic-Indic, Extended Arabic-Indic (Persian), Devanagari.
DIGIT_ZEROS = [ord("0"), 0x0660, 0x06F0, 0x0966]


@dataclass(frozen=True)
class Shape:
    """One way of writing a header, built by the renderer below."""

    bracketed: bool
    separator: str
    comma: str
    seconds: bool
    meridiem: tuple[str, str] | None
    meridiem_space: str
    four_digit_year: bool
    order: str
    digit_zero: int
    noise: bool
    ending: str


@dataclass(frozen=True)
class Message:
    """A generated message."""

    timestamp: datetime.datetime
    sender: str
    lines: tuple[str, ...]


def _digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


def render_header(message: Message, shape: Shape) -> str:
    """Write the header of ``message`` in ``shape``, independently of the parser."""
    stamp = message.timestamp
    year = f"{stamp.year:04d}" if shape.four_digit_year else f"{stamp.year % 100:02d}"
    day, month = f"{stamp.day}", f"{stamp.month:02d}"
    fields = {"dmy": (day, month, year), "mdy": (month, day, year), "ymd": (year, month, day)}
    date = shape.separator.join(fields[shape.order])

    if shape.meridiem is None:
        time = f"{stamp.hour:02d}:{stamp.minute:02d}"
    else:
        hour = stamp.hour % 12 or 12
        marker = shape.meridiem[stamp.hour >= 12]
        time = f"{hour}:{stamp.minute:02d}"
    if shape.seconds:
        time += f":{stamp.second:02d}"
    if shape.meridiem is not None:
        time += shape.meridiem_space + marker

    text = _digits(f"{date}{shape.comma} {time}", shape.digit_zero)
    if shape.noise:
        text = text.replace(shape.separator, "\u200f" + shape.separator)
    if shape.bracketed:
        prefix = "\ufeff[\ufeff" if shape.noise else "["
        return f"{prefix}{text}] "
    prefix = "\u200e" if shape.noise else ""
    return f"{prefix}{text} - "


def render(messages: list[Message], shape: Shape) -> bytes:
    """Render a whole export in ``shape``."""
    out = io.StringIO()
    inner = "\n" if shape.ending == "crlf-terminated" else shape.ending
    outer = "\r\n" if shape.ending == "crlf-terminated" else shape.ending
    for message in messages:
        sender = f"\u202a{message.sender}\u202c" if shape.noise else message.sender
        body = inner.join(message.lines)
        if shape.noise:
            body = "\u200e" + body
        out.write(f"{render_header(message, shape)}{sender}: {body}{outer}")
    return out.getvalue().encode("utf-8")


def _shapes() -> st.SearchStrategy[Shape]:
    return st.builds(
        Shape,
        bracketed=st.booleans(),
        separator=st.sampled_from(["/", ".", "-"]),
        comma=st.sampled_from([",", "", "\u060c"]),
        seconds=st.booleans(),
        meridiem=st.one_of(st.none(), st.sampled_from(MERIDIEMS)),
        meridiem_space=st.sampled_from(MERIDIEM_SPACES),
        four_digit_year=st.booleans(),
        order=st.sampled_from(["dmy", "mdy", "ymd"]),
        digit_zero=st.sampled_from(DIGIT_ZEROS),
        noise=st.booleans(),
        ending=st.sampled_from(["\n", "\r\n", "crlf-terminated"]),
    ).filter(lambda shape: shape.order != "ymd" or shape.four_digit_year)


_WORD = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFÄé€£:,.!?()12345 😀👍🏻"),
    min_size=0,
    max_size=20,
)
_LINE = st.builds(lambda first, rest: (first + rest).rstrip(), st.sampled_from("AbCxyZ"), _WORD)
_NAME = st.builds(
    lambda first, rest: (first + rest).strip(),
    st.sampled_from("AMPRZ"),
    st.text(alphabet=st.sampled_from("abcdefz -'é"), max_size=12),
)


def _messages(seconds: bool) -> st.SearchStrategy[list[Message]]:
    stamps = st.datetimes(
        min_value=datetime.datetime(2010, 1, 1), max_value=datetime.datetime(2035, 12, 31)
    ).map(lambda t: t.replace(microsecond=0, second=t.second if seconds else 0))
    message = st.builds(
        Message, timestamp=stamps, sender=_NAME, lines=st.lists(_LINE, min_size=1, max_size=3).map(tuple)
    )
    return st.lists(message, min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_render_round_trip(data: st.DataObject) -> None:
    shape = data.draw(_shapes())
    messages = data.draw(_messages(shape.seconds))

    chat = parse_export(io.BytesIO(render(messages, shape)), date_order=shape.order)
    parsed = list(chat.messages())

    assert [m.timestamp for m in parsed] == [m.timestamp for m in messages]
    assert [m.sender for m in parsed] == [m.sender for m in messages]
    assert [m.text for m in parsed] == ["\n".join(m.lines) for m in messages]
    assert all(m.kind == "chat" for m in parsed)
    assert chat.report.ok


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_order_decided_from_day_over_12(data: st.DataObject) -> None:
    shape = data.draw(_shapes().filter(lambda s: s.order != "ymd"))
    messages = data.draw(_messages(shape.seconds))
    day = datetime.datetime(2024, 5, 13 + data.draw(st.integers(0, 15)), 10, 0)
    messages.append(Message(day, "Ana", ("late",)))

    fallback = "mdy" if shape.order == "dmy" else "dmy"
    chat = parse_export(io.BytesIO(render(messages, shape)), fallback_date_order=fallback)

    assert chat.date_order == shape.order
    assert chat.date_order_source == "file"
    assert [m.timestamp for m in chat.messages()] == [m.timestamp for m in messages]
