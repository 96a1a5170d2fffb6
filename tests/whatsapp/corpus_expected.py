"""Expected values for the WhatsApp corpus, written by reading each file by hand.

Timestamps are the first and last message in file order, which is not always
chronological (some samples have out-of-order lines). Participants are the
senders of chat messages, with numbers in E.164 when they normalise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Expected:
    """Hand-checked facts about one corpus file."""

    file: str
    messages: int
    system: int
    media: int
    participants: list[str]
    first: str
    last: str
    date_order: str
    date_order_source: str
    fallback: str = "dmy"
    unparsed: int = 0
    bodies: dict[int, str] = field(default_factory=dict)


_GROUP = ["Alice", "Bob", "Carol", "Dave", "Mallory"]
_POKEMON = [
    "Ash Ketchum",
    "Brock",
    "Jessie & James",
    "Meowth",
    "Misty",
    "Prof. Oak",
    "Raichu",
    "Wobbuffet",
]
_LOREM = "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit. Duis libero."
_LOREM_LONG = (
    "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n"
    "Pellentesque non tincidunt erat.\n"
    "Nullam suscipit diam dolor, non pretium leo semper eu.\n"
    "Aliquam pellentesque facilisis nunc eu rhoncus.\nCras scelerisque neque."
)

EXPECTED: list[Expected] = [
    Expected(
        "01_android_en-US_24h_group_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:00", "2018-01-30T00:23:00", "mdy", "file",
        bodies={32: "location: https://maps.google.com/?q=50.9425526,6.9523387"},
    ),
    Expected(
        "02_android_en-US_12h_group_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:00", "2018-01-30T00:23:00", "mdy", "file",
        bodies={11: "Is this a chat log?"},
    ),
    Expected(
        "03_ios_en-US_24h_bracket_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:03", "2018-01-30T00:23:03", "mdy", "file",
    ),
    Expected(
        "04_ios_en-US_12h_bracket_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:03", "2018-01-30T00:23:03", "mdy", "file",
        bodies={36: ""},
    ),
    Expected(
        "05_android_de-DE_24h_bom-lines_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:00", "2018-01-30T00:13:00", "dmy", "file",
        bodies={29: "Funktioniert! Gehen auch mehrere Links? "
                "https://example.com/u/demo007 https://example.com/u/demo007"},
    ),
    Expected(
        "06_ios_de-DE_12h_bom-in-bracket_whatsr.txt", 50, 8, 2, _GROUP,
        "2018-01-29T12:24:03", "2018-01-30T00:23:03", "dmy", "file",
        bodies={28: "https://example.com/u/demo007"},
    ),
    Expected(
        "07_android_pt-BR_no-comma_mentions_egregora.txt", 19, 7, 4,
        ["Loja Exemplo", "Rafael"],
        "2025-10-03T09:45:00", "2025-10-28T14:15:00", "dmy", "file",
        bodies={
            17: "@Loja Exemplo teste de menção",
            18: "Olá! Obrigado por escrever pra Loja Exemplo  😃\n"
            "Um dos nossos atendentes vai te responder daqui a pouco.\n"
            "Em função da alta demanda de atendimento, isso pode levar um tempinho.\n"
            "Mas não se preocupe - você já está na fila e em breve vai receber "
            "nosso retorno.\n"
            "Horário de atendimento\n"
            "Segunda a Sexta  - 10h às 19h.\n"
            "Sábado- 10h às 18:00h.",
        },
    ),
    Expected(
        "08_android_en-GB_ddmmyyyy_multiline-emoji_rwhatsapp.txt", 9, 2, 1,
        ["Jonas Berger", "Test"],
        "2017-07-12T22:35:00", "2018-09-28T13:30:00", "dmy", "file",
        bodies={5: "It's fun doing text analysis with R\nisn't it?"},
    ),
    Expected(
        "09_android_de-style_dd.mm.yyyy_whatstk-pokemon.txt", 20, 2, 0, _POKEMON,
        "2016-04-15T15:04:00", "2016-10-31T12:23:00", "dmy", "file",
    ),
    Expected(
        "10_ios-style_bracket_dd-mm-yy_hhmmss_whatstk-lorem-head.txt", 80, 0, 0,
        ["+15550100199", "Giuseppe", "John", "Mary"],
        "2020-01-15T02:22:56", "2020-02-07T19:45:52", "dmy", "file",
        bodies={1: "Nostrud exercitation magna id."},
    ),
    Expected(
        "11_android_yyyy-mm-dd_12h-PM_whatstk.txt", 20, 2, 0, _POKEMON,
        "2016-04-15T15:04:00", "2016-10-31T14:23:00", "ymd", "file",
    ),
    Expected(
        "12_android_yyyy-mm-dd_12h-p.m._whatstk.txt", 20, 2, 0, _POKEMON,
        "2016-04-15T15:04:00", "2016-10-31T14:23:00", "ymd", "file",
    ),
    Expected(
        "13_android_es-style_mm-dd-yyyy_a.-m._chatminer.txt", 9, 2, 0,
        ["Jahn Doe", "John Doe", "John Doe 🤓", "John-John Doe", "🤓"],
        "2019-01-01T11:25:00", "2021-12-30T22:01:00", "mdy", "file",
        bodies={2: ".", 3: _LOREM, 10: _LOREM},
    ),
    Expected(
        "14_android_es-style_nbsp-in-p.m._chatminer.txt", 3, 0, 0,
        ["John Doe", "John Doe 🤓", "🤓"],
        "2022-10-09T22:37:00", "2022-10-09T22:37:00", "dmy", "locale",
        bodies={1: "Testing abnormal\u00a0unicode"},
    ),
    Expected(
        "14_android_es-style_nbsp-in-p.m._chatminer.txt", 3, 0, 0,
        ["John Doe", "John Doe 🤓", "🤓"],
        "2022-09-10T22:37:00", "2022-09-10T22:37:00", "mdy", "locale",
        fallback="mdy",
    ),
    Expected(
        "15_mixed-formats-in-one-file_chatminer-testlog.txt", 8, 3, 0,
        ["+12 555 0178", "Jahn Doe", "John Doe"],
        "2019-12-24T11:23:00", "2017-07-16T19:13:00", "mdy", "file",
        unparsed=15,
        bodies={3: _LOREM, 5: _LOREM_LONG},
    ),
    Expected(
        "16_ios-style_bracket_dd-mm-yy_12h-p.m._impossible-13pm_chatminer.txt",
        4, 0, 0, ["Jahn Doe", "John Doe", "John-John Doe"],
        "2022-10-09T23:37:00", "2022-10-12T14:37:00", "dmy", "locale",
        bodies={4: _LOREM},
    ),
    Expected(
        "17_ios-style_bracket_mm.dd.yy_chatminer.txt", 4, 0, 0,
        ["Jahn Doe", "John Doe", "John-John Doe"],
        "2021-10-21T15:21:45", "2021-10-24T15:21:48", "mdy", "file",
    ),
    Expected(
        "18_android_m-d-yy_system-msgs_disappearing_chatminer.txt", 10, 3, 0,
        ["+12 555 0178", "Jahn Doe", "John Doe", "John-John Doe"],
        "2019-12-24T11:23:00", "2017-07-16T19:13:00", "mdy", "file",
        bodies={1: ".", 4: "Lorem ipsum : dolor sit amet.", 7: _LOREM_LONG},
    ),
    Expected(
        "19_android_dd-mm-yyyy_short-group_pustur.txt", 5, 2, 0,
        ["+41555010123", "Sample User", "TestBot"],
        "2017-03-06T00:45:00", "2017-04-09T01:50:00", "dmy", "locale",
        bodies={5: "How are you?\nIs everything alright?"},
    ),
    Expected(
        "21_android_en-US_12h_nnbsp-before-AMPM_reconstructed-pustur248.txt",
        8, 1, 2, ["Nadia Okafor", "Tom Verlaan"],
        "2023-01-04T19:02:00", "2023-02-04T22:35:00", "mdy", "locale",
        fallback="mdy",
        bodies={4: "Got it. So is it 4:30 or 6?"},
    ),
    Expected(
        "22_android_en-GB_lowercase-ampm_nnbsp_unsaved-number_reconstructed-whatstk140.txt",
        7, 0, 2, ["+447700900123", "Priya Shah"],
        "2023-10-09T11:11:00", "2023-10-13T16:45:00", "dmy", "file",
        bodies={
            3: "Hi, is the quote still valid?\nIt was £1,200 last week",
            5: "Yes until Friday",
            6: "",
            8: "Confirmed: 12 units, delivery 20/10",
        },
    ),
    Expected(
        "23_ios_en-NL_crlf-terminators_lf-inside_lrm_edited_deleted_reconstructed.txt",
        10, 3, 3, ["Eva Smit", "Klaas", "Ruud Jansen"],
        "2025-10-19T01:02:19", "2025-10-19T09:20:10", "dmy", "file",
        bodies={
            3: "Morning! Two requests from the fair:\n1) Bakker BV wants 40 units\n"
            "[20/10/2025, 10:00:00] De Vries: please call back (pasted from another "
            "chat)",
            8: "Price list: €1.250,00 excl. BTW",
            12: "Hi: I'm Klaas: from Utrecht",
        },
    ),
    Expected(
        "24_android_ar_arabic-indic-digits_rlm_reconstructed-chatexport.txt",
        4, 0, 0, ["سامي", "ليلى"],
        "2022-04-24T11:55:00", "2022-04-25T09:03:00", "dmy", "file",
        bodies={4: "السعر ١٢٠٠ درهم"},
    ),
]
