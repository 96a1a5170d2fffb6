"""Plans, usage caps, cost ceilings and provider rate limits.

Caps and ceilings come from the user's plan (:data:`PLANS`), changed by
operators through :class:`~wallie.db.models.LimitOverride` rows (a user's
own override wins over a plan override, which wins over the built-in
plan).  Provider rate limits come from settings (see :func:`provider_limits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .db.fields import utcnow
from .db.models import AuditLog, LimitOverride, User
from .errors import WallieError
from .settings import Settings

#: Caps and ceilings of each plan.  Caps are counts per period (the period is
#: in the name); ``cost_ceiling_usd`` is dollars per calendar month (UTC).
PLANS: dict[str, dict[str, Decimal]] = {
    "free": {
        "ai_analyses_per_day": Decimal(50),
        "tokens_per_month": Decimal(300_000),
        "transcription_minutes_per_month": Decimal(30),
        "emails_per_day": Decimal(100),
        "whatsapp_sends_per_day": Decimal(50),
        "cost_ceiling_usd": Decimal("2.00"),
    },
    "pro": {
        "ai_analyses_per_day": Decimal(1_000),
        "tokens_per_month": Decimal(10_000_000),
        "transcription_minutes_per_month": Decimal(600),
        "emails_per_day": Decimal(500),
        "whatsapp_sends_per_day": Decimal(1_000),
        "cost_ceiling_usd": Decimal("30.00"),
    },
    "team": {
        "ai_analyses_per_day": Decimal(5_000),
        "tokens_per_month": Decimal(50_000_000),
        "transcription_minutes_per_month": Decimal(3_000),
        "emails_per_day": Decimal(2_000),
        "whatsapp_sends_per_day": Decimal(10_000),
        "cost_ceiling_usd": Decimal("150.00"),
    },
}

#: Providers whose calls are rate-limited; see :func:`provider_limits`.
PROVIDERS = ("openai", "gmail", "graph", "whatsapp", "smtp")

#: Every name a cap or ceiling can have.
LIMIT_NAMES = tuple(PLANS["free"])


class UnknownLimit(WallieError):
    """Raised when a plan or limit name is not defined.

    Attributes:
      name: The unknown name.
    """

    def __init__(self, kind: str, name: str, valid: tuple[str, ...]) -> None:
        super().__init__(f"Unknown {kind} {name!r}. Valid {kind}s: {', '.join(valid)}.")
        self.name = name


@dataclass(frozen=True)
class Window:
    """A rate limit: at most ``limit`` units per ``window_ms`` milliseconds."""

    name: str
    limit: int
    window_ms: int


@dataclass(frozen=True)
class ProviderLimits:
    """Rate windows and a concurrency limit of one provider, per key."""

    provider: str
    windows: tuple[Window, ...]
    concurrency: int | None = None


def provider_limits(settings: Settings) -> dict[str, ProviderLimits]:
    """Return the rate limits of every provider, from settings."""
    return {
        "openai": ProviderLimits(
            "openai",
            (
                Window("requests", settings.openai_requests_per_minute, 60_000),
                Window("tokens", settings.openai_tokens_per_minute, 60_000),
            ),
        ),
        "gmail": ProviderLimits(
            "gmail", (Window("quota_units", settings.gmail_units_per_user_minute, 60_000),)
        ),
        "graph": ProviderLimits(
            "graph", (), concurrency=settings.graph_concurrent_per_mailbox
        ),
        "whatsapp": ProviderLimits(
            "whatsapp", (Window("messages", settings.whatsapp_messages_per_second, 1_000),)
        ),
        "smtp": ProviderLimits(
            "smtp", (Window("messages", settings.mail_sends_per_day, 86_400_000),)
        ),
    }


def check_plan(plan: str) -> None:
    """Raise :class:`UnknownLimit` unless ``plan`` is a known plan."""
    if plan not in PLANS:
        raise UnknownLimit("plan", plan, tuple(PLANS))


#: Largest value a cap or ceiling may be set to; larger values are typing errors.
MAX_LIMIT_VALUE = Decimal(10) ** 12


def parse_limit_value(name: str, value: str) -> Decimal:
    """Return ``value`` as a non-negative number for limit ``name``.

    Raises:
      UnknownLimit: ``name`` is not a limit.
      ValueError: ``value`` is not a number of 0 or more.
    """
    if name not in LIMIT_NAMES:
        raise UnknownLimit("limit", name, LIMIT_NAMES)

    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a number (got {value!r}).") from None

    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number (got {value!r}).")

    if number < 0:
        raise ValueError(f"{name} must be 0 or more (got {value!r}).")

    if number > MAX_LIMIT_VALUE:
        raise ValueError(f"{name} must be at most {MAX_LIMIT_VALUE:,} (got {value!r}).")

    if name.endswith("_usd"):
        # "3e1" is stored and shown as 30.
        return Decimal(format(number, "f"))

    if number != number.to_integral_value():
        raise ValueError(f"{name} counts whole units, so it must be a whole number (got {value!r}).")

    # "1e3" and "2.0" are stored and shown as 1000 and 2.
    return Decimal(int(number))


def limit_for(user: User, name: str) -> Decimal:
    """Return the cap or ceiling ``name`` that applies to ``user`` now."""
    check_plan(user.plan)
    own = LimitOverride.get_or_none(
        (LimitOverride.user == user) & (LimitOverride.name == name)
    )
    if own is not None:
        return Decimal(own.value)

    plan = LimitOverride.get_or_none(
        LimitOverride.user.is_null() & (LimitOverride.plan == user.plan) & (LimitOverride.name == name)
    )
    if plan is not None:
        return Decimal(plan.value)

    return PLANS[user.plan][name]


def limits_for(user: User) -> dict[str, Decimal]:
    """Return every cap and ceiling that applies to ``user``."""
    return {name: limit_for(user, name) for name in LIMIT_NAMES}


def set_limit(
    name: str, value: str, *, user: User | None = None, plan: str | None = None,
    operator: str = "",
) -> Decimal:
    """Store an operator's override and record it in the audit log.

    Raises:
      ValueError: Neither or both of ``user`` and ``plan`` were given, or the value is invalid.
      UnknownLimit: The plan or limit name is unknown.
    """
    if (user is None) == (plan is None):
        raise ValueError("Give exactly one of a user and a plan.")

    if plan is not None:
        check_plan(plan)

    number = parse_limit_value(name, value)
    database = LimitOverride._meta.database
    with database.atomic():
        match = (LimitOverride.name == name) & (
            (LimitOverride.user == user) if user is not None
            else (LimitOverride.user.is_null() & (LimitOverride.plan == plan))
        )
        updated = LimitOverride.update(value=str(number), updated_at=utcnow()).where(match).execute()
        if not updated:
            LimitOverride.create(user=user, plan=plan, name=name, value=str(number))

        AuditLog.create(
            action="limit.set",
            operator=operator,
            user_id=user.id if user is not None else None,
            target=f"user:{user.id}" if user is not None else f"plan:{plan}",
            details={"name": name, "value": str(number)},
        )

    return number


def deployment_ceiling(settings: Settings) -> Decimal:
    """Return the monthly cost ceiling of the whole deployment, in dollars."""
    return settings.deployment_cost_ceiling_usd

