"""Settings read from the environment.

Every variable Wallie reads is declared once in :data:`VARIABLES`, with its
default, an example and a parser.  The README's configuration table lists
the same variables, and a test keeps the two in step.  Provider settings
(OpenAI, SMTP, Gmail, Outlook, ...) are declared here as well, under their
own heading in :data:`VARIABLES`, so there is one place to look.

An invalid value stops start-up with a :class:`~wallie.errors.ConfigurationError`
that names the variable, shows the value with any password masked, and
gives the expected form.
"""

from __future__ import annotations

import base64

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``.

    Examples:
      >>> mask_url("postgres://app:s3cret@db.example.com:5432/wallie")
      'postgres://app:***@db.example.com:5432/wallie'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"

    if parts.password is None:
        return url

    user = parts.username or ""
    # Keep the host and port as written, so a bad port still shows in errors.
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _invalid(name: str, value: str, expected: str, *, secret: bool = False) -> None:
    shown = "<hidden>" if secret else mask_url(value)
    raise ConfigurationError(name, f"{name}={shown!r} is invalid: expected {expected}.")


def _parse_database_url(name: str, value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in _DATABASE_SCHEMES:
        _invalid(
            name,
            value,
            "sqlite:///PATH, postgres://USER:PASSWORD@HOST:PORT/NAME "
            "or postgresql://USER:PASSWORD@HOST:PORT/NAME",
        )

    if scheme != "sqlite" and not urlsplit(value).path.strip("/"):
        _invalid(name, value, "a database name after the host, as in .../wallie")

    return value


def _parse_redis_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in _REDIS_SCHEMES or not (parts.hostname or parts.path):
        _invalid(name, value, "redis://[:PASSWORD@]HOST:PORT[/DB] or rediss://...")

    return value


def _parse_smtp_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    expected = "smtp://USER:PASSWORD@HOST:PORT or smtps://USER:PASSWORD@HOST:PORT"
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        _invalid(name, value, expected)

    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = 0
    if port == 0 and parts.netloc.rsplit("@", 1)[-1].count(":") == 1:
        _invalid(name, value, f"{expected}, with PORT a number from 1 to 65535")

    return value


def _parse_fernet_keys(name: str, value: str) -> str:
    keys = [key.strip() for key in value.split(",") if key.strip()]
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            _invalid(
                name, value,
                f"comma-separated Fernet keys (key {position} is not 32 url-safe base64 bytes); "
                "generate one with cryptography's Fernet.generate_key()",
                secret=True,
            )

    if not keys:
        _invalid(name, value, "at least one Fernet key", secret=True)

    return ",".join(keys)


def _parse_positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0

    if number < 1:
        _invalid(name, value, "a whole number of 1 or more")

    return number


def _parse_positive_decimal(name: str, value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal(0)

    if not number.is_finite() or number <= 0:
        _invalid(name, value, "a number of dollars more than 0, such as 250 or 99.50")

    return number


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True

    if lowered in ("0", "false", "no", "off", ""):
        return False

    _invalid(name, value, "one of 1, true, yes, on, 0, false, no, off")
    return False


def _parse_score(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1

    if not 1 <= number <= 100:
        _invalid(name, value, "a whole number from 1 to 100")

    return number


def _parse_time_zone(name: str, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        _invalid(name, value, "an IANA time zone name such as Europe/Amsterdam")

    return value


def _parse_log_level(name: str, value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _invalid(name, value, "one of DEBUG, INFO, WARNING, ERROR, CRITICAL")

    return level


def _parse_transcription_engine(name: str, value: str) -> str:
    engine = value.strip().lower()
    if engine not in ("auto", "offline", "openai"):
        _invalid(name, value, "one of auto, offline, openai")

    return engine


def _parse_text(name: str, value: str) -> str:
    return value


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it goes, its default and how to read it."""

    name: str
    field: str
    default: str | None
    example: str
    help: str
    parse: Callable[[str, str], Any] = _parse_text
    secret: bool = False


#: Every environment variable Wallie reads, in the order the README lists them.
#: A default of ``None`` means "unset"; ``{home}`` stands for ``WALLIE_HOME``.
VARIABLES: tuple[Variable, ...] = (
    # Storage and broker.
    Variable(
        "WALLIE_HOME",
        "home",
        None,
        "/var/lib/wallie",
        "Folder for the SQLite file, media and the mail outbox. "
        "Defaults to the working directory.",
    ),
    Variable(
        "DATABASE_URL",
        "database_url",
        "sqlite:///{home}/wallie.db",
        "postgres://wallie:PASSWORD@localhost:5432/wallie",
        "Database. SQLite for the embedded default, PostgreSQL in production.",
        _parse_database_url,
    ),
    Variable(
        "REDIS_URL",
        "redis_url",
        None,
        "redis://localhost:6379/0",
        "Redis for the broker, locks and limits. Unset: the in-process broker.",
        _parse_redis_url,
    ),
    Variable(
        "WALLIE_LOG_LEVEL",
        "log_level",
        "INFO",
        "DEBUG",
        "Level of the root logger for wallie-cli.",
        _parse_log_level,
    ),
    Variable(
        "WALLIE_DEFAULT_TIME_ZONE",
        "default_time_zone",
        "UTC",
        "Europe/Amsterdam",
        "Time zone given to users created without one.",
        _parse_time_zone,
    ),
    # Worker processes (read by the Procfile, listed here for the README).
    Variable(
        "DRAMATIQ_PROCESSES",
        "worker_processes",
        "2",
        "4",
        "Worker processes per worker dyno (Procfile).",
        _parse_positive_int,
    ),
    Variable(
        "DRAMATIQ_THREADS",
        "worker_threads",
        "4",
        "8",
        "Worker threads per process (Procfile).",
        _parse_positive_int,
    ),
    # Providers.  Later features declare their variables below this line.
    Variable(
        "OPENAI_API_KEY",
        "openai_api_key",
        None,
        "sk-...",
        "OpenAI key. Unset: the offline analyzer and transcriber are used.",
        secret=True,
    ),
    Variable(
        "OPENAI_BASE_URL",
        "openai_base_url",
        None,
        "https://api.openai.com/v1",
        "OpenAI-compatible API address. Unset: the client library's default.",
    ),
    Variable(
        "OPENAI_MODEL",
        "openai_model",
        None,
        "gpt-4.1-mini",
        "Chat model of the conversation analysis. Unset: gpt-4o-mini.",
    ),
    Variable(
        "OPENAI_TRANSCRIPTION_MODEL",
        "openai_transcription_model",
        None,
        "whisper-1",
        "Speech-to-text model of voice note transcription. Unset: gpt-transcribe.",
    ),
    Variable(
        "SMTP_URL",
        "smtp_url",
        None,
        "smtp://USER:PASSWORD@smtp.example.com:587",
        "Outgoing mail server. Unset: mail is written as .eml files to the outbox.",
        _parse_smtp_url,
    ),
    Variable(
        "WALLIE_MAIL_FROM",
        "mail_from",
        "Wallie <wallie@localhost>",
        "Wallie <noreply@example.com>",
        "Sender address of the mail Wallie sends.",
    ),
    # Glass ceiling: provider rate limits and the deployment's budget.
    Variable(
        "WALLIE_OPENAI_REQUESTS_PER_MINUTE",
        "openai_requests_per_minute",
        "500",
        "5000",
        "OpenAI requests per minute for the deployment (OpenAI's usage tier 1 "
        "allows 500 for gpt-4o-mini; raise it to your organisation's tier).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_OPENAI_TOKENS_PER_MINUTE",
        "openai_tokens_per_minute",
        "200000",
        "2000000",
        "OpenAI tokens per minute for the deployment (tier 1 for gpt-4o-mini: 200,000).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_GMAIL_UNITS_PER_USER_MINUTE",
        "gmail_units_per_user_minute",
        "15000",
        "6000",
        "Gmail API quota units per user per minute (Google's published per-user "
        "limit: 15,000).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_GRAPH_CONCURRENT_PER_MAILBOX",
        "graph_concurrent_per_mailbox",
        "4",
        "2",
        "Concurrent Microsoft Graph requests per mailbox (Outlook service limit: 4).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_WHATSAPP_MESSAGES_PER_SECOND",
        "whatsapp_messages_per_second",
        "80",
        "20",
        "WhatsApp Cloud API messages per second per business number (Meta's "
        "default throughput: 80).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_MAIL_SENDS_PER_DAY",
        "mail_sends_per_day",
        "500",
        "2000",
        "Mails sent per mailbox per day (Gmail's limit for personal accounts: "
        "500; Google Workspace: 2,000).",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_DEPLOYMENT_COST_CEILING_USD",
        "deployment_cost_ceiling_usd",
        "100",
        "2500",
        "Monthly spending limit of the whole deployment on paid providers, in US dollars.",
        _parse_positive_decimal,
    ),
    Variable(
        "WALLIE_WEBHOOK_URL",
        "webhook_url",
        None,
        "https://crm.example.com/hooks/wallie",
        "Address that receives a signed POST for each hot lead. Unset: no webhook.",
    ),
    Variable(
        "WALLIE_WEBHOOK_SECRET",
        "webhook_secret",
        None,
        "a long random string",
        "Key of the HMAC-SHA256 signature on webhook POSTs.",
        secret=True,
    ),
    Variable(
        "WALLIE_HOT_LEAD_THRESHOLD",
        "hot_lead_threshold",
        "80",
        "70",
        "Lead score from 1 to 100 at which a contact becomes a hot lead and the "
        "user is notified.",
        _parse_score,
    ),
    # Connected mailboxes (Gmail, Outlook).
    Variable(
        "WALLIE_TOKEN_KEYS",
        "token_keys",
        None,
        "KEY1,KEY2",
        "Comma-separated Fernet keys that encrypt stored OAuth tokens. The first "
        "key encrypts and every key decrypts.",
        _parse_fernet_keys,
        secret=True,
    ),
    Variable(
        "WALLIE_MAIL_SYNC_WINDOW_DAYS",
        "mail_sync_window_days",
        "90",
        "30",
        "Days of mail that the first sync of a Gmail mailbox reads.",
        _parse_positive_int,
    ),
    # Reports and schedules.
    Variable(
        "WALLIE_CHURN_INACTIVE_DAYS",
        "churn_inactive_days",
        "14",
        "21",
        "Days without a message either way after which a client counts as at risk "
        "of churn.",
        _parse_positive_int,
    ),
    # Imports.
    Variable(
        "WALLIE_BATCH_IMPORT_BYTES",
        "batch_import_bytes",
        "20000000",
        "50000000",
        "WhatsApp exports of this many bytes or more are split into chunks that "
        "several workers store in parallel.",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_WHATSAPP_C_PARSER",
        "whatsapp_c_parser",
        "true",
        "false",
        "Parse WhatsApp exports with the C extension where the install built it. "
        "false runs the Python code, which gives the same messages more slowly.",
        _parse_bool,
    ),
    # Voice notes.
    Variable(
        "WALLIE_TRANSCRIPTION_ENGINE",
        "transcription_engine",
        "auto",
        "offline",
        "Speech-to-text engine of voice notes: auto (openai when OPENAI_API_KEY is "
        "set, else offline), offline or openai.",
        _parse_transcription_engine,
    ),
    Variable(
        "WALLIE_TRANSCRIPTION_MAX_SECONDS",
        "transcription_max_seconds",
        "3600",
        "900",
        "Longest voice note or recording that is transcribed, in seconds; longer "
        "audio is rejected with the reason.",
        _parse_positive_int,
    ),
    Variable(
        "WALLIE_TRANSCRIPTION_MAX_BYTES",
        "transcription_max_bytes",
        "734003200",
        "100000000",
        "Largest audio file that is transcribed, in bytes (default 700 MiB); larger "
        "files are rejected before decoding.",
        _parse_positive_int,
    ),
    # Data protection.
    Variable(
        "WALLIE_BACKUP_RETENTION_DAYS",
        "backup_retention_days",
        "30",
        "35",
        "Days database backups are kept; deletion receipts state when erased "
        "data leaves the last backup.",
        _parse_positive_int,
    ),
)


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one process."""

    home: Path
    database_url: str
    redis_url: str | None
    log_level: str
    default_time_zone: str
    worker_processes: int
    worker_threads: int
    openai_api_key: str | None
    openai_base_url: str | None
    openai_model: str | None
    openai_transcription_model: str | None
    smtp_url: str | None
    mail_from: str
    webhook_url: str | None
    webhook_secret: str | None
    hot_lead_threshold: int
    openai_requests_per_minute: int
    openai_tokens_per_minute: int
    gmail_units_per_user_minute: int
    graph_concurrent_per_mailbox: int
    whatsapp_messages_per_second: int
    mail_sends_per_day: int
    deployment_cost_ceiling_usd: Decimal
    token_keys: str | None
    mail_sync_window_days: int
    churn_inactive_days: int
    backup_retention_days: int
    batch_import_bytes: int
    whatsapp_c_parser: bool
    transcription_engine: str
    transcription_max_seconds: int
    transcription_max_bytes: int

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured and jobs run in-process."""
        return self.redis_url is None

    @property
    def media_dir(self) -> Path:
        """Folder where imported media files are kept."""
        return self.home / "media"

    @property
    def outbox_dir(self) -> Path:
        """Folder where mail is written as ``.eml`` files when SMTP is unset."""
        return self.home / "outbox"

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied, for tests and tools."""
        return dataclasses.replace(self, **changes)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every variable in :data:`VARIABLES`.

    Raises:
      ConfigurationError: A variable has an invalid value.
    """
    if environ is None:
        environ = os.environ

    home = Path(environ.get("WALLIE_HOME") or os.getcwd()).expanduser().resolve()
    values: dict[str, Any] = {"home": home}
    for variable in VARIABLES:
        if variable.field == "home":
            continue

        raw = environ.get(variable.name)
        if raw is None or raw == "":
            raw = variable.default

        if raw is None:
            values[variable.field] = None
            continue

        raw = raw.replace("{home}", str(home))
        values[variable.field] = variable.parse(variable.name, raw)

    return Settings(**values)


@functools.cache
def get_settings() -> Settings:
    """Return the settings of this process, read once from the environment."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings so the next call reads the environment again."""
    get_settings.cache_clear()
