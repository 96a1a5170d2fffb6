"""The model-backed analyzer: one Chat Completions call per conversation batch.

The new messages of one conversation go out together in one request with a
strict JSON schema as ``response_format``. The reply is checked before it is
trusted: due times must parse, every cited message id must be one of the
batch's ids (findings that cite another id are dropped with a warning) and
numbers are clamped to their ranges. The client is built with
``max_retries=0`` so that the caller, which tracks the rate limits and the
cost ceiling, decides about retries from the errors in
:mod:`wallie.analysis.errors`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai

from wallie.errors import ConfigurationError
from wallie.logging import get_logger

from .errors import (
    AnalysisError,
    InvalidModelOutput,
    ProviderAuthError,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRequestFailed,
    ProviderUnavailable,
)
from .output import parse_output
from .types import AnalysisResult, Conversation, Usage

logger = get_logger(__name__)

#: Model used when none is configured.
DEFAULT_MODEL = "gpt-4o-mini"

#: Estimated prices in US dollars per 1M tokens, as (input, output), from
#: public price tables read on 2026-12-04 (gpt-4o-mini at 0.15/0.60 since its
#: launch). Pass explicit prices to the analyzer for other models or when
#: OpenAI changes them.
PRICES_PER_1M_TOKENS: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-nano": (Decimal("0.10"), Decimal("0.40")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
}

#: Wait before the next request after a 429 without a retry header, in ms.
DEFAULT_RETRY_AFTER_MS = 5_000

#: Request timeout, in seconds.
DEFAULT_TIMEOUT_S = 60.0

#: Decimal places of the stored cost, in US dollars.
_COST_QUANTUM = Decimal("0.000001")

SYSTEM_PROMPT = """\
You read a salesperson's conversation with one contact and return JSON that \
matches the schema. The messages are given as JSON with their ids; \
"outbound" messages are from the salesperson (the user), "inbound" from the \
contact. Earlier "context" messages only help you understand the new ones: \
never cite them.

reminders: one per promise ("commitment", promised_by is the sender) or \
request ("request", promised_by is the party asked to act) that names a \
future time. No reminder for greetings, thanks, farewells such as "see you \
tomorrow", or dates mentioned in passing or in the past. text is a short \
sentence for the user. due_at is ISO 8601 with the UTC offset of the user's \
time zone, resolved from the message's own send time: a date without a time \
of day is due at 09:00 local, "today" and "end of day" at 17:00 local, "this \
week" on Friday at 17:00 local.
entities: amounts (value as a plain decimal number, currency as ISO 4217), \
emails, phone numbers (E.164), dates (ISO date) and URLs.
intent_signals: buying signals from the contact only, strength from 0 to 1 \
(1 for an explicit purchase, order or signature).
score: 0 to 100, how likely the contact is to buy soon, with reasons (short \
snake_case code, points, one sentence); strong_intent is true only for an \
explicit purchase, order or readiness to sign.
source_message_id and message_id must be ids of the new messages."""

_ENTITY_KINDS = ["amount", "email", "phone", "date", "url"]
_SIGNAL_KINDS = [
    "price", "quote", "quantity", "budget", "contract", "delivery_date", "demo",
    "meeting", "purchase",
]  # fmt: skip


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    # Strict structured output requires every property to be required and
    # no other property to be allowed.
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


#: JSON schema of the model's reply, in the strict subset OpenAI accepts.
OUTPUT_SCHEMA: dict[str, Any] = _object(
    {
        "reminders": {
            "type": "array",
            "items": _object(
                {
                    "text": {"type": "string"},
                    "due_at": {"type": "string", "description": "ISO 8601 with offset"},
                    "source_message_id": {"type": "integer"},
                    "promised_by": {"type": "string", "enum": ["user", "contact"]},
                    "kind": {"type": "string", "enum": ["commitment", "request"]},
                }
            ),
        },
        "entities": {
            "type": "array",
            "items": _object(
                {
                    "kind": {"type": "string", "enum": _ENTITY_KINDS},
                    "value": {"type": "string"},
                    "currency": {"type": ["string", "null"]},
                    "message_id": {"type": "integer"},
                }
            ),
        },
        "intent_signals": {
            "type": "array",
            "items": _object(
                {
                    "kind": {"type": "string", "enum": _SIGNAL_KINDS},
                    "strength": {"type": "number"},
                    "message_id": {"type": "integer"},
                }
            ),
        },
        "score": _object(
            {
                "value": {"type": "integer"},
                "reasons": {
                    "type": "array",
                    "items": _object(
                        {
                            "code": {"type": "string"},
                            "points": {"type": "integer"},
                            "text": {"type": "string"},
                        }
                    ),
                },
                "strong_intent": {"type": "boolean"},
            }
        ),
    }
)

#: The ``response_format`` argument of every request.
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "conversation_analysis",
        "strict": True,
        "schema": OUTPUT_SCHEMA,
    },
}


def _prices(
    model: str, input_price: Decimal | None, output_price: Decimal | None
) -> tuple[Decimal, Decimal]:
    if input_price is not None and output_price is not None:
        return input_price, output_price

    if model not in PRICES_PER_1M_TOKENS:
        raise ConfigurationError(
            "OPENAI_MODEL",
            f"No price is known for model {model!r}; pass input and output prices "
            f"per 1M tokens, or use one of {', '.join(sorted(PRICES_PER_1M_TOKENS))}.",
        )

    known_input, known_output = PRICES_PER_1M_TOKENS[model]
    return input_price or known_input, output_price or known_output


def build_request_body(conversation: Conversation) -> str:
    """Return the user message of a request: the conversation as JSON.

    Parameters:
      conversation: The conversation to analyze.

    Returns:
      JSON with the user's time zone and language, and the context and new
      messages with their ids, directions, senders, local send times and texts.
    """
    zone = ZoneInfo(conversation.time_zone)

    def rows(messages: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [
            {
                "id": message.id,
                "sent_at": message.sent_at.astimezone(zone).isoformat(),
                "direction": message.direction,
                "sender": message.sender,
                "text": message.text,
            }
            for message in messages
        ]

    payload = {
        "time_zone": conversation.time_zone,
        "language": conversation.language,
        "context": rows(conversation.context),
        "messages": rows(conversation.messages),
    }
    return json.dumps(payload, ensure_ascii=False)


def _retry_after_ms(response: httpx.Response) -> int | None:
    milliseconds = response.headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0, int(float(milliseconds)))
        except ValueError:
            pass

    seconds = response.headers.get("retry-after")
    if seconds is None:
        return None
    try:
        return max(0, int(float(seconds) * 1000))
    except ValueError:
        pass

    try:
        moment = parsedate_to_datetime(seconds)
    except (TypeError, ValueError):
        return None

    return max(0, int((moment - datetime.now(moment.tzinfo)).total_seconds() * 1000))


def map_error(error: openai.OpenAIError) -> AnalysisError:
    """Return the analyzer error for an error of the ``openai`` client.

    Parameters:
      error: The client's exception.

    Returns:
      The matching :mod:`wallie.analysis.errors` exception, to be raised ``from``
      the original.
    """
    if isinstance(error, openai.APITimeoutError):
        return ProviderUnavailable("The OpenAI request timed out; retry with backoff.")
    if isinstance(error, openai.APIConnectionError):
        return ProviderUnavailable(
            "Connecting to the OpenAI API failed; retry with backoff."
        )
    if not isinstance(error, openai.APIStatusError):
        return ProviderUnavailable(f"The OpenAI client failed: {type(error).__name__}.")

    status = error.status_code
    if error.code == "insufficient_quota" or error.type == "insufficient_quota":
        return ProviderQuotaExhausted(
            "The OpenAI account has no quota left; add credit or change the key."
        )
    if status == 429:
        hinted = _retry_after_ms(error.response)
        wait = DEFAULT_RETRY_AFTER_MS if hinted is None else hinted
        return ProviderRateLimited(
            f"OpenAI rate limit reached; retry after {wait} ms.",
            retry_after_ms=wait,
            hinted=hinted is not None,
        )
    if status in (401, 403):
        return ProviderAuthError(
            f"OpenAI rejected the API key (HTTP {status}); check OPENAI_API_KEY."
        )
    if status >= 500:
        return ProviderUnavailable(
            f"OpenAI returned HTTP {status}; retry with backoff."
        )

    return ProviderRequestFailed(
        f"OpenAI rejected the request with HTTP {status} ({error.code or 'no code'}).",
        status=status,
    )


class OpenAIAnalyzer:
    """Analyze conversations with an OpenAI chat model and structured output.

    Parameters:
      api_key: The OpenAI API key.
      base_url: The API address, or ``None`` for the client library's default.
      model: The model name, or ``None`` for :data:`DEFAULT_MODEL`.
      input_price_per_1m: US dollars per 1M prompt tokens, or ``None`` for the
        price table's estimate.
      output_price_per_1m: US dollars per 1M completion tokens, or ``None`` for
        the price table's estimate.
      timeout_s: Request timeout, in seconds.

    Raises:
      ConfigurationError: When the model has no known price and none is given.
    """

    provider = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str | None = None,
        input_price_per_1m: Decimal | None = None,
        output_price_per_1m: Decimal | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.model = model or DEFAULT_MODEL
        self.input_price, self.output_price = _prices(
            self.model, input_price_per_1m, output_price_per_1m
        )
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    def analyze(self, conversation: Conversation) -> AnalysisResult:
        """Analyze a conversation's new messages in one Chat Completions call.

        Parameters:
          conversation: The new messages, context and the user's settings.

        Returns:
          The checked findings, the model's score and the usage with its cost.

        Raises:
          ProviderRateLimited: On a 429 rate limit; wait ``retry_after_ms``.
          ProviderQuotaExhausted: When the account has no credit; do not retry.
          ProviderAuthError: When the key is rejected; do not retry.
          ProviderUnavailable: On 5xx, timeouts and connection errors.
          ProviderRequestFailed: When OpenAI rejects the request itself.
          InvalidModelOutput: When the reply is not JSON or breaks the schema.
        """
        if not conversation.messages:
            return AnalysisResult((), (), (), Usage(self.provider, self.model))

        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": build_request_body(conversation)},
                ],
                response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
            )
        except openai.OpenAIError as error:
            mapped = map_error(error)
            logger.warning(
                "OpenAI call for conversation %s failed: %s",
                conversation.conversation_id,
                mapped,
            )
            raise mapped from error

        usage = self._usage(completion)
        choice = completion.choices[0] if completion.choices else None
        if choice is None:
            raise InvalidModelOutput("The reply has no choices.")
        if choice.finish_reason == "length":
            raise InvalidModelOutput("The reply was cut off at the token limit.")
        if choice.message.refusal:
            raise InvalidModelOutput("The model refused to analyze the conversation.")

        result = parse_output(choice.message.content or "", conversation, usage)
        logger.info(
            "Analyzed %d messages of conversation %s with %s: %d tokens in, "
            "%d tokens out, %s USD, %d reminders.",
            len(conversation.messages),
            conversation.conversation_id,
            self.model,
            usage.tokens_in,
            usage.tokens_out,
            usage.cost_usd,
            len(result.reminders),
        )
        return result

    def _usage(self, completion: Any) -> Usage:
        tokens_in = tokens_out = 0
        if completion.usage is not None:
            tokens_in = completion.usage.prompt_tokens or 0
            tokens_out = completion.usage.completion_tokens or 0
        else:
            logger.warning(
                "The OpenAI reply %s has no usage; cost counted as 0.", completion.id
            )

        cost = (
            tokens_in * self.input_price + tokens_out * self.output_price
        ) / 1_000_000
        return Usage(
            provider=self.provider,
            model=self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost.quantize(_COST_QUANTUM),
        )
