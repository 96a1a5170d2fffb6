"""Find time expressions in folded text and resolve them to local datetimes.

Regexes cover the common relative forms in English, Spanish, Portuguese,
German and French. These are today, tomorrow, the day after tomorrow, weekday
names, this or next week, next month, end of day, week or month, "in N
days/hours", and times of day (``3pm``, ``15:00``, ``15h30``, ``um 15 Uhr``,
``a las 10``, morning, noon, afternoon, evening). Absolute dates such as ``12 March``,
``3/12`` or ``12.03.`` are only marked by a regex and then resolved with
``dateparser``, which is too slow (tens of milliseconds a call) and too eager
(it reads words such as "on" as dates) to run on whole messages.

Defaults, in the user's local time:

- A date without a time of day is due at :data:`DEFAULT_TIME` (09:00).
- "today" and "end of day" are due at :data:`END_OF_DAY` (17:00), or one hour
  after the message when it was sent later than that.
- "this week" and "end of the week" are due on Friday at 17:00; sent on a
  Friday or over the weekend, they are read as "end of day".
- "next week" is Monday of the next week; "next month" is its first day;
  "end of the month" is its last day at 17:00; "the weekend" is Saturday.
- A weekday name is its first occurrence after the message's date, so
  "Tuesday" and "next Tuesday" sent on a Tuesday both mean a week later, and
  "this Friday" sent on a Friday means the same day, read as "today".
- A time of day without a date is today when still ahead, else tomorrow.
- A bare hour from 1 to 7 after a preposition ("at 3", "a las 5") is read as
  the afternoon, because such times are business hours.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dateparser

from .text import has_digit

#: Time of day of a date that is given without one, local.
DEFAULT_TIME = time(9, 0)

#: Time of day of "today" and "end of day", local.
END_OF_DAY = time(17, 0)

#: Delay after the message for "today" when it was sent after END_OF_DAY.
LATE_DAY_DELAY = timedelta(hours=1)

_MORNING = time(9, 0)
_NOON = time(12, 0)
_AFTERNOON = time(15, 0)
_EVENING = time(19, 0)

_WEEKDAYS: dict[str, int] = {}
for _index, _names in enumerate(
    (
        "monday lunes segunda montag lundi",
        "tuesday martes terca dienstag mardi",
        "wednesday miercoles quarta mittwoch mercredi",
        "thursday jueves quinta donnerstag jeudi",
        "friday viernes sexta freitag vendredi",
        "saturday sabado samstag sonnabend samedi",
        "sunday domingo sonntag dimanche",
    )
):
    for _name in _names.split():
        _WEEKDAYS[_name] = _index

#: Portuguese weekday names that are also ordinal numbers ("a quinta vez").
_PT_ORDINAL_WEEKDAYS = frozenset({"segunda", "terca", "quarta", "quinta", "sexta"})

#: Words before a Portuguese ordinal weekday that make it a day.
_PT_DAY_PREFIXES = frozenset(
    {"na", "ate", "proxima", "nesta", "esta", "essa", "na proxima"}
)

_NUMBER_WORDS: dict[str, int] = {}
for _value, _names in (
    (1, "a an one un una uno um uma ein eine einem einer eins une"),
    (2, "two couple dos dois duas zwei deux"),
    (3, "three few tres drei trois"),
    (4, "four cuatro quatro vier quatre"),
    (5, "five cinco funf cinq"),
    (6, "six seis sechs"),
    (7, "seven siete sete sieben sept"),
    (10, "ten diez dez zehn dix"),
):
    for _name in _names.split():
        _NUMBER_WORDS[_name] = _value

_UNIT_DELTAS: dict[str, timedelta] = {}
for _delta, _names in (
    (timedelta(minutes=1), "minute minutes minuto minutos minuten min mins"),
    (timedelta(hours=1), "hour hours hora horas stunde stunden heure heures h hrs"),
    (timedelta(days=1), "day days dia dias tag tagen tage jour jours"),
    (timedelta(weeks=1), "week weeks semana semanas woche wochen semaine semaines"),
):
    for _name in _names.split():
        _UNIT_DELTAS[_name] = _delta

#: Words (in folded text) that make a message worth the full time scan.
#: Digits are checked separately, because every numeric form contains one.
TIME_WORDS = frozenset(
    set(_WEEKDAYS)
    | {
        "today",
        "tonight",
        "tomorrow",
        "tmrw",
        "tmr",
        "week",
        "weekend",
        "month",
        "morning",
        "afternoon",
        "evening",
        "noon",
        "midday",
        "eod",
        "cob",
        "day",
        "hours",
        "hour",
        "days",
        "weeks",
        "business",
        "hoy",
        "manana",
        "noche",
        "tarde",
        "mediodia",
        "semana",
        "mes",
        "dias",
        "horas",
        "hora",
        "semanas",
        "hoje",
        "amanha",
        "manha",
        "noite",
        "meio",
        "fim",
        "heute",
        "morgen",
        "ubermorgen",
        "abend",
        "nachmittag",
        "vormittag",
        "mittag",
        "fruh",
        "woche",
        "wochenende",
        "monat",
        "monatsende",
        "feierabend",
        "stunde",
        "stunden",
        "tagen",
        "wochen",
        "aujourd",
        "demain",
        "soir",
        "matin",
        "midi",
        "semaine",
        "mois",
        "journee",
        "heure",
        "heures",
        "jours",
    }  # fmt: skip
)

_NUMBER = (
    r"(?P<count>\d{1,3}|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + ")"
)
_UNIT = r"(?P<unit>" + "|".join(sorted(_UNIT_DELTAS, key=len, reverse=True)) + ")"
_WEEKDAY = r"(?P<weekday>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + ")"

#: Relative date expressions. Group names select the resolver, and the order
#: of the alternatives matters where one contains another.
_RELATIVE = re.compile(
    r"(?P<in>\b(?:in|within|en|dentro de|em|daqui a|dans|d'ici)\s+"
    + _NUMBER
    + r"\s+"
    + _UNIT
    + r"\b)"
    r"|(?P<after_tomorrow>\b(?:(?:the )?day after tomorrow|pasado manana"
    r"|depois de amanha"
    r"|ubermorgen|apres-demain|apres demain)\b)"
    r"|(?P<tomorrow>\b(?:tomorrow|tmrw|tmr|amanha|demain)\b"
    r"|(?<!la )(?<!esta )(?<!una )\bmanana\b"
    r"|(?<!guten )(?<!am )(?<!jeden )(?<!den )\bmorgen\b)"
    r"|(?P<end_of_day>\b(?:(?:the )?end of (?:the )?(?:day|business)|eod|cob"
    r"|close of business|(?:al )?final del dia|fin del dia|(?:ao )?final do dia"
    r"|fim do dia|ende des tages|feierabend|(?:en )?fin de (?:la )?journee)\b)"
    r"|(?P<today>\b(?:today|tonight|later today|this (?:afternoon|evening)|hoy"
    r"|esta (?:tarde|noche)|hoje|heute|aujourd'hui|aujourd hui|ce soir"
    r"|cet apres-midi)\b)"
    r"|(?P<end_of_week>\b(?:(?:the )?end of (?:the |this )?week|finales de (?:la "
    r"|esta )?semana"
    r"|final de (?:la |esta )?semana|final da semana|fim da semana"
    r"|ende (?:der|dieser) woche|fin de (?:la |cette )?semaine)\b)"
    r"|(?P<weekend>\b(?:(?:this |the )?weekend|(?:el |este )fin de semana"
    r"|(?:no |neste )fim de semana|(?:am |diesem )wochenende|(?:ce )?week-end)\b)"
    r"|(?P<next_week>\b(?:next week|(?:la )?semana que viene|(?:la )?proxima semana"
    r"|(?:la )?semana proxima|semana que vem|nachste(?:n)? woche|kommende(?:n)? woche"
    r"|(?:la )?semaine prochaine)\b)"
    r"|(?P<this_week>\b(?:this week|esta semana|nesta semana|essa semana"
    r"|diese(?:r)? woche|cette semaine)\b)"
    r"|(?P<end_of_month>\b(?:(?:the )?end of (?:the |this )?month|fin de mes"
    r"|final de(?:l)? mes|final do mes|fim do mes|ende des monats|monatsende"
    r"|fin du mois|fin de mois)\b)"
    r"|(?P<next_month>\b(?:next month|(?:el )?mes que viene|(?:el )?proximo mes"
    r"|mes que vem|nachste(?:n)? monat|kommende(?:n)? monat|(?:le )?mois prochain)\b)"
    r"|(?P<day>(?P<pre>\b(?:last|past|next|coming|this|on|by|until|before|el|este|esta"
    r"|proximo|proxima|pasado|na|no|nesta|neste|ate|na proxima|am|bis|letzten|letzter"
    r"|vergangenen|nachsten|kommenden|diesen|ce|le|avant|d'ici)\s+)?\b"
    + _WEEKDAY
    + r"(?P<feira>-feira| feira)?\b"
    r"(?P<post>\s+(?:pasado|passado|passada|dernier|derniere|prochain|que viene"
    r"|que vem))?)"
)

_PAST_PREFIXES = frozenset(
    {"last", "past", "pasado", "letzten", "letzter", "vergangenen"}
)
_PAST_SUFFIXES = frozenset({"pasado", "passado", "passada", "dernier", "derniere"})
_THIS_PREFIXES = frozenset({"this", "este", "esta", "nesta", "neste", "diesen", "ce"})

_MONTHS: dict[str, tuple[int, tuple[str, ...]]] = {}
for _month, _pairs in enumerate(
    (
        "en:january,jan es:enero pt:janeiro de:januar,jan fr:janvier",
        "en:february,feb es:febrero pt:fevereiro de:februar fr:fevrier",
        "en:march,mar es:marzo pt:marco de:marz fr:mars",
        "en:april,apr es:abril pt:abril de:april fr:avril",
        "en:may es:mayo pt:maio de:mai fr:mai",
        "en:june,jun es:junio pt:junho de:juni fr:juin",
        "en:july,jul es:julio pt:julho de:juli fr:juillet",
        "en:august,aug es:agosto pt:agosto de:august fr:aout",
        "en:september,sept,sep es:septiembre,setiembre pt:setembro de:september "
        "fr:septembre",
        "en:october,oct es:octubre pt:outubro de:oktober fr:octobre",
        "en:november,nov es:noviembre pt:novembro de:november fr:novembre",
        "en:december,dec es:diciembre pt:dezembro de:dezember fr:decembre",
    ),
    start=1,
):
    for _pair in _pairs.split():
        _language, _names = _pair.split(":")
        for _name in _names.split(","):
            _languages = _MONTHS.get(_name, (_month, ()))[1]
            _MONTHS[_name] = (_month, (*_languages, _language))

_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"

#: Absolute dates, marked here and resolved by dateparser.
_ABSOLUTE = re.compile(
    r"(?P<pre>\b[a-z']+\s+)?"
    r"(?P<date>\b\d{1,2}(?:st|nd|rd|th|er|o|\.)?\s+(?:de\s+|of\s+)?(?P<month>"
    + _MONTH
    + r")\b"
    r"(?:\.?\s+(?:de\s+)?\d{4}\b)?"
    r"|\b(?P<month2>" + _MONTH + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?\b(?:,?\s+\d{4}\b)?"
    r"|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|\b\d{1,2}\.\d{1,2}\.(?:\d{2,4}\b)?)"
)

#: Words before a date that make it a reference to the past or to a document
#: ("the invoice from March 3rd"), not a deadline.
_REFERENCE_PREFIXES = frozenset(
    {
        "from",
        "of",
        "since",
        "dated",
        "del",
        "desde",
        "do",
        "da",
        "vom",
        "seit",
        "du",
        "depuis",
        "de",
    }  # fmt: skip
)

#: Text that may not follow a bare hour: digits, amounts, quantities and
#: month names, so that "by 15 December" and "um 15 Euro" are no times of day.
_NOT_AN_HOUR = (
    r"(?![\d:/,%]|\.\d"
    r"|\s*(?:€|\$|£|eur|euro|usd|dollar|k\b|%|units|unidades|stuck|x\b)"
    r"|\s+(?:de |of )?" + _MONTH + r"\b)"
)

#: Times of day. Group names select the resolver.
_TIME_OF_DAY = re.compile(
    r"\b(?P<h1>\d{1,2})(?:[:.h](?P<m1>\d{2}))?\s*(?P<ampm>a\.?m\.?|p\.?m\.?)(?![a-z])"
    r"|\b(?P<h2>\d{1,2}):(?P<m2>\d{2})\b"
    r"|\b(?P<h3>\d{1,2})\.(?P<m3>\d{2})\s*uhr\b"
    r"|\b(?P<h4>\d{1,2})\s*(?:h|hs|uhr)(?P<m4>\d{2})?\b"
    r"|\b(?:at|around|by|before|a las|a la|sobre las|hacia las|antes de las|as|das"
    r"|por volta das|antes das|ate as|um|gegen|vers|avant)\s+"
    r"(?P<h5>\d{1,2})"
    + _NOT_AN_HOUR
    + r"|(?P<noon>\b(?:noon|midday|mediodia|meio-dia|meio dia"
    r"|mittag|mittags|(?<!apres-)(?<!apres )midi)\b)"
    r"|(?P<afternoon>\b(?:afternoon|(?:por|de|a|esta|a la) tarde|nachmittag|nachmittags"
    r"|apres-midi|apres midi)\b)"
    r"|(?P<evening>\b(?:evening|tonight|(?:por|de) la noche|esta noche|a noite|de noite"
    r"|abend|abends|soir|soiree)\b)"
    r"|(?P<morning>\b(?:morning|(?:por|de|en) la manana|de manha|pela manha|fruh"
    r"|morgens"
    r"|vormittag|am morgen|matin|matinee)\b)"
)


@dataclass(frozen=True)
class DateFinding:
    """A date expression found in a sentence.

    Attributes:
      day: The resolved local date, or ``None`` for an exact moment.
      default_time: The time of day to use when the sentence gives none.
      moment: The exact local moment of "in N hours" forms, else ``None``.
      future: Whether the expression can be a deadline: not in the past and
        not a reference such as "the invoice from March 3rd".
      next_week: Whether the expression is "next week", which moves a weekday
        in the same sentence into that week.
      weekday: Whether the expression is a weekday name.
    """

    day: date | None
    default_time: time
    moment: datetime | None = None
    future: bool = True
    next_week: bool = False
    weekday: bool = False


def might_contain_time(folded: str, words: set[str]) -> bool:
    """Return whether a folded text may contain a time expression.

    Parameters:
      folded: The folded text.
      words: The words of ``folded``.

    Note:
      This is the cheap test that lets most messages skip the full scan.
    """
    return not TIME_WORDS.isdisjoint(words) or has_digit(folded)


def _end_of_day(now: datetime) -> tuple[date, time]:
    if now.time() >= END_OF_DAY:
        later = now + LATE_DAY_DELAY
        return later.date(), later.time().replace(second=0, microsecond=0)

    return now.date(), END_OF_DAY


def _resolve_weekday(match: re.Match[str], now: datetime) -> DateFinding | None:
    name = match.group("weekday")
    prefix = (match.group("pre") or "").strip()
    suffix = (match.group("post") or "").strip()
    if name in _PT_ORDINAL_WEEKDAYS and not match.group("feira"):
        if prefix not in _PT_DAY_PREFIXES:
            return None

    target = _WEEKDAYS[name]
    today = now.date()
    if prefix in _PAST_PREFIXES or suffix in _PAST_SUFFIXES:
        days_back = (today.weekday() - target) % 7 or 7
        return DateFinding(
            today - timedelta(days=days_back), DEFAULT_TIME, future=False
        )

    days_ahead = (target - today.weekday()) % 7
    if days_ahead == 0 and prefix not in _THIS_PREFIXES:
        days_ahead = 7

    if days_ahead == 0:
        day, at = _end_of_day(now)
        return DateFinding(day, at, weekday=True)

    return DateFinding(today + timedelta(days=days_ahead), DEFAULT_TIME, weekday=True)


def _resolve_in(match: re.Match[str], now: datetime) -> DateFinding | None:
    count_text = match.group("count")
    count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS[count_text]
    delta = _UNIT_DELTAS[match.group("unit")] * count
    if delta < timedelta(days=1):
        return DateFinding(None, DEFAULT_TIME, moment=now + delta)

    return DateFinding((now + delta).date(), DEFAULT_TIME)


def _resolve_week_end(now: datetime) -> DateFinding:
    today = now.date()
    if today.weekday() >= 4:
        day, at = _end_of_day(now)
        return DateFinding(day, at)

    return DateFinding(today + timedelta(days=4 - today.weekday()), END_OF_DAY)


def _resolve_relative(match: re.Match[str], now: datetime) -> DateFinding | None:
    today = now.date()
    kind = match.lastgroup
    if kind == "day":
        return _resolve_weekday(match, now)
    if kind == "in":
        return _resolve_in(match, now)
    if kind == "tomorrow":
        return DateFinding(today + timedelta(days=1), DEFAULT_TIME)
    if kind == "after_tomorrow":
        return DateFinding(today + timedelta(days=2), DEFAULT_TIME)
    if kind in ("today", "end_of_day"):
        day, at = _end_of_day(now)
        return DateFinding(day, at)
    if kind in ("end_of_week", "this_week"):
        return _resolve_week_end(now)
    if kind == "weekend":
        return DateFinding(
            today + timedelta(days=(5 - today.weekday()) % 7), DEFAULT_TIME
        )
    if kind == "next_week":
        monday = today + timedelta(days=7 - today.weekday())
        return DateFinding(monday, DEFAULT_TIME, next_week=True)
    if kind == "next_month":
        first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        return DateFinding(first, DEFAULT_TIME)
    if kind == "end_of_month":
        last = today.replace(day=monthrange(today.year, today.month)[1])
        return DateFinding(last, END_OF_DAY)

    return None


def _dateparser_language(month: str | None, language: str) -> str:
    if month is None:
        return language

    languages = _MONTHS[month][1]
    return language if language in languages else languages[0]


def _date_order(language: str, time_zone: str) -> str:
    # Month first is the US habit; everyone else writing 3/12 means 3 December.
    if language == "en" and time_zone.startswith("America/"):
        return "MDY"

    return "DMY"


def _resolve_absolute(
    match: re.Match[str], now: datetime, language: str, time_zone: str
) -> DateFinding | None:
    prefix = (match.group("pre") or "").strip()
    reference = prefix in _REFERENCE_PREFIXES
    month = match.group("month") or match.group("month2")
    settings = {
        "PREFER_DATES_FROM": "past" if reference else "future",
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "DATE_ORDER": _date_order(language, time_zone),
        "REQUIRE_PARTS": ["day", "month"],
    }
    parsed = dateparser.parse(
        match.group("date").rstrip("."),
        languages=[_dateparser_language(month, language)],
        settings=settings,
    )
    if parsed is None:
        return None

    day = parsed.date()
    return DateFinding(day, DEFAULT_TIME, future=not reference and day >= now.date())


def find_dates(
    folded: str, now: datetime, language: str, time_zone: str
) -> list[DateFinding]:
    """Find and resolve the date expressions of a folded sentence, in order.

    Parameters:
      folded: The folded sentence.
      now: The message's local send time, aware.
      language: The user's language hint, for dateparser.
      time_zone: The user's IANA time zone name, for the order of numeric dates.

    Returns:
      The findings, past ones and references included with ``future`` false.
    """
    findings: list[tuple[int, DateFinding]] = []
    for match in _RELATIVE.finditer(folded):
        finding = _resolve_relative(match, now)
        if finding is not None:
            findings.append((match.start(), finding))

    if has_digit(folded):
        for match in _ABSOLUTE.finditer(folded):
            finding = _resolve_absolute(match, now, language, time_zone)
            if finding is not None:
                findings.append((match.start("date"), finding))

    findings.sort(key=lambda pair: pair[0])
    return [finding for _, finding in findings]


def _hour_minute(hour: int, minute: int) -> time | None:
    if 0 <= hour <= 23 and 0 <= minute <= 59:
        return time(hour, minute)

    return None


def _clock_time(match: re.Match[str]) -> time | None:
    if match.group("h1") is not None:
        hour = int(match.group("h1"))
        minute = int(match.group("m1") or 0)
        if not 1 <= hour <= 12:
            return None
        if match.group("ampm").startswith("p") and hour != 12:
            hour += 12
        elif match.group("ampm").startswith("a") and hour == 12:
            hour = 0
        return _hour_minute(hour, minute)

    for hour_group, minute_group in (("h2", "m2"), ("h3", "m3"), ("h4", "m4")):
        if match.group(hour_group) is not None:
            minute = int(match.group(minute_group) or 0)
            return _hour_minute(int(match.group(hour_group)), minute)

    hour = int(match.group("h5"))
    if 1 <= hour <= 7:
        hour += 12
    return _hour_minute(hour, 0)


def find_time_of_day(folded: str) -> time | None:
    """Return the first time of day in a folded sentence, or ``None``.

    Parameters:
      folded: The folded sentence.

    Returns:
      The local time of day: a clock time, or 09:00, 12:00, 15:00 or 19:00 for
      morning, noon, afternoon and evening.
    """
    for match in _TIME_OF_DAY.finditer(folded):
        kind = match.lastgroup
        if kind == "noon":
            return _NOON
        if kind == "afternoon":
            return _AFTERNOON
        if kind == "evening":
            return _EVENING
        if kind == "morning":
            return _MORNING

        clock = _clock_time(match)
        if clock is not None:
            return clock

    return None


def _pick_date(findings: list[DateFinding]) -> DateFinding | None:
    future = [finding for finding in findings if finding.future]
    if not future:
        return None

    next_week = next((finding for finding in future if finding.next_week), None)
    weekday = next((finding for finding in future if finding.weekday), None)
    if next_week is not None and weekday is not None and weekday.day and next_week.day:
        # "next week on Tuesday": the weekday inside the next week.
        day = next_week.day + timedelta(days=weekday.day.weekday())
        return DateFinding(day, DEFAULT_TIME)

    return future[0]


def resolve_due(
    findings: list[DateFinding], clock: time | None, now: datetime
) -> datetime | None:
    """Combine a sentence's dates and time of day into one local due time.

    Parameters:
      findings: The sentence's date findings, from :func:`find_dates`.
      clock: The sentence's time of day, from :func:`find_time_of_day`.
      now: The message's local send time, aware.

    Returns:
      The local due time, or ``None`` when the sentence names no future time.
    """
    chosen = _pick_date(findings)
    if chosen is not None and chosen.moment is not None:
        return chosen.moment.replace(second=0, microsecond=0)

    if chosen is None:
        if clock is None:
            return None
        due = datetime.combine(now.date(), clock, tzinfo=now.tzinfo)
        if due <= now:
            due += timedelta(days=1)
        return due

    assert chosen.day is not None
    due = datetime.combine(chosen.day, clock or chosen.default_time, tzinfo=now.tzinfo)
    if due <= now:
        return None

    return due
