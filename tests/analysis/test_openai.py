"""OpenAI analyzer against a loopback Chat Completions server.

The real ``openai`` client talks HTTP to :mod:`tests.analysis.fake_openai`;
nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from wallie.analysis import OfflineAnalyzer, OpenAIAnalyzer, make_analyzer
from wallie.analysis.errors import (
    InvalidModelOutput,
    ProviderAuthError,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRequestFailed,
    ProviderUnavailable,
)
from wallie.analysis.openai_analyzer import DEFAULT_RETRY_AFTER_MS, OUTPUT_SCHEMA
from wallie.errors import ConfigurationError, WallieError

from .fake_openai import FakeOpenAI, Reply, completion, error_body, serve
from .helpers import conversation

API_KEY = "sk-test-not-a-real-key"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serve() as state:
        yield state


@pytest.fixture
def analyzer(fake: FakeOpenAI) -> OpenAIAnalyzer:
    return OpenAIAnalyzer(API_KEY, base_url=fake.base_url, model="gpt-4o-mini")


def _batch() -> Any:
    return conversation(
        ("2026-12-04T09:00:00+00:00", "inbound", "How much for 200 licenses?"),
        (
            "2026-12-04T09:10:00+00:00",
            "outbound",
            "I'll send the quote tomorrow by 3pm.",
        ),
        ("2026-12-04T09:12:00+00:00", "inbound", "Great, email me at ana@example.com"),
        time_zone="Europe/Madrid",
    )


def _reply(**overrides: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "reminders": [
            {
                "text": "Send Ana the quote.",
                "due_at": "2026-12-05T15:00:00+01:00",
                "source_message_id": 2,
                "promised_by": "user",
                "kind": "commitment",
            }
        ],
        "entities": [
            {
                "kind": "email",
                "value": "ana@example.com",
                "currency": None,
                "message_id": 3,
            }
        ],
        "intent_signals": [{"kind": "price", "strength": 0.7, "message_id": 1}],
        "score": {
            "value": 72,
            "reasons": [
                {"code": "price_question", "points": 15, "text": "Asked about price."}
            ],
            "strong_intent": False,
        },
    }
    reply.update(overrides)
    return reply


def test_openai_structured_reply(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    fake.queue(Reply(200, completion(json.dumps(_reply()), 1200, 300)))

    result = analyzer.analyze(_batch())

    assert len(result.reminders) == 1
    assert result.reminders[0].due_at == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    assert result.reminders[0].source_message_id == 2
    assert result.reminders[0].promised_by == "user"
    assert result.entities[0].value == "ana@example.com"
    assert result.signals[0].kind == "price"
    assert result.score is not None
    assert result.score.score == 72
    assert result.score.reasons[0].code == "price_question"


def test_openai_usage_and_cost(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    fake.queue(Reply(200, completion(json.dumps(_reply()), 1200, 300)))

    usage = analyzer.analyze(_batch()).usage

    assert usage.provider == "openai"
    assert usage.model == "gpt-4o-mini"
    assert usage.tokens_in == 1200
    assert usage.tokens_out == 300
    # 1200 * 0.15 / 1M + 300 * 0.60 / 1M
    assert usage.cost_usd == Decimal("0.000360")


def test_openai_one_request_per_batch(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    fake.queue(Reply(200, completion(json.dumps(_reply()))))

    analyzer.analyze(_batch())

    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"] == OUTPUT_SCHEMA
    payload = json.loads(request.body["messages"][1]["content"])
    assert [message["id"] for message in payload["messages"]] == [1, 2, 3]
    assert payload["time_zone"] == "Europe/Madrid"
    assert payload["messages"][1]["sent_at"] == "2026-12-04T10:10:00+01:00"


def test_openai_schema_is_strict() -> None:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from walk(value)

    for node in walk(OUTPUT_SCHEMA):
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])


def test_openai_rate_limit_reads_retry_after(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    body = error_body(
        "Rate limit reached for requests.", "requests", "rate_limit_exceeded"
    )
    fake.queue(Reply(429, body, {"retry-after": "7"}))

    with pytest.raises(ProviderRateLimited) as caught:
        analyzer.analyze(_batch())

    assert caught.value.retry_after_ms == 7000
    assert caught.value.hinted is True
    assert caught.value.permanent is False
    assert len(fake.requests) == 1


def test_openai_rate_limit_prefers_retry_after_ms(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    body = error_body("Rate limit reached for tokens.", "tokens", "rate_limit_exceeded")
    fake.queue(Reply(429, body, {"retry-after-ms": "1500", "retry-after": "2"}))

    with pytest.raises(ProviderRateLimited) as caught:
        analyzer.analyze(_batch())

    assert caught.value.retry_after_ms == 1500


def test_openai_rate_limit_without_header(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    fake.queue(Reply(429, error_body("Slow down.", "requests", "rate_limit_exceeded")))

    with pytest.raises(ProviderRateLimited) as caught:
        analyzer.analyze(_batch())

    assert caught.value.retry_after_ms == DEFAULT_RETRY_AFTER_MS
    assert caught.value.hinted is False


def test_openai_insufficient_quota(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    body = error_body(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    fake.queue(Reply(429, body))

    with pytest.raises(ProviderQuotaExhausted) as caught:
        analyzer.analyze(_batch())

    assert caught.value.permanent is True
    assert isinstance(caught.value, WallieError)


def test_openai_invalid_key(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    body = error_body(
        "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
    )
    fake.queue(Reply(401, body))

    with pytest.raises(ProviderAuthError) as caught:
        analyzer.analyze(_batch())

    assert caught.value.permanent is True
    assert API_KEY not in str(caught.value)


def test_openai_server_error(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    fake.queue(Reply(500, error_body("The server had an error.", "server_error", None)))

    with pytest.raises(ProviderUnavailable) as caught:
        analyzer.analyze(_batch())

    assert caught.value.permanent is False
    assert len(fake.requests) == 1


def test_openai_connection_refused() -> None:
    with serve() as state:
        base_url = state.base_url

    analyzer = OpenAIAnalyzer(API_KEY, base_url=base_url, timeout_s=2.0)

    with pytest.raises(ProviderUnavailable):
        analyzer.analyze(_batch())


def test_openai_unknown_model(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    body = error_body(
        "The model does not exist.", "invalid_request_error", "model_not_found"
    )
    fake.queue(Reply(404, body))

    with pytest.raises(ProviderRequestFailed) as caught:
        analyzer.analyze(_batch())

    assert caught.value.status == 404
    assert caught.value.permanent is True


def test_openai_malformed_json(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    fake.queue(Reply(200, completion('{"reminders": [')))

    with pytest.raises(InvalidModelOutput, match="not valid JSON"):
        analyzer.analyze(_batch())


@pytest.mark.parametrize(
    ("reply", "path"),
    [
        (
            _reply(reminders=[{**_reply()["reminders"][0], "due_at": "tomorrow"}]),
            "reminders[0].due_at",
        ),
        (
            _reply(reminders=[{**_reply()["reminders"][0], "kind": "wish"}]),
            "reminders[0].kind",
        ),
        (
            _reply(reminders=[{**_reply()["reminders"][0], "source_message_id": "2"}]),
            "reminders[0].source_message_id",
        ),
        (
            {key: value for key, value in _reply().items() if key != "entities"},
            "reply.entities",
        ),
        (
            _reply(score={"value": 50, "reasons": [], "strong_intent": "yes"}),
            "score.strong_intent",
        ),
        (
            _reply(
                intent_signals=[{"kind": "price", "strength": "high", "message_id": 1}]
            ),
            "intent_signals[0].strength",
        ),
    ],
)
def test_openai_schema_violation_names_field(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer, reply: dict[str, Any], path: str
) -> None:
    fake.queue(Reply(200, completion(json.dumps(reply))))

    with pytest.raises(InvalidModelOutput) as caught:
        analyzer.analyze(_batch())

    assert caught.value.path == path
    assert path in str(caught.value)


def test_openai_drops_unknown_message_ids(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer, caplog: pytest.LogCaptureFixture
) -> None:
    stray = {**_reply()["reminders"][0], "source_message_id": 99}
    reply = _reply(
        reminders=[_reply()["reminders"][0], stray],
        intent_signals=[{"kind": "purchase", "strength": 1.0, "message_id": 42}],
    )
    fake.queue(Reply(200, completion(json.dumps(reply))))

    with caplog.at_level(logging.WARNING, logger="wallie.analysis"):
        result = analyzer.analyze(_batch())

    assert [reminder.source_message_id for reminder in result.reminders] == [2]
    assert result.signals == ()
    assert "message 99" in caplog.text
    assert "message 42" in caplog.text
    assert "licenses" not in caplog.text


def test_openai_clamps_numbers(fake: FakeOpenAI, analyzer: OpenAIAnalyzer) -> None:
    reply = _reply(
        intent_signals=[{"kind": "price", "strength": 3.5, "message_id": 1}],
        score={"value": 140, "reasons": [], "strong_intent": True},
    )
    fake.queue(Reply(200, completion(json.dumps(reply))))

    result = analyzer.analyze(_batch())

    assert result.signals[0].strength == 1.0
    assert result.score is not None
    assert result.score.score == 100
    assert result.score.strong_intent is True


def test_openai_naive_due_time_is_local(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    reminder = {**_reply()["reminders"][0], "due_at": "2026-12-05T15:00:00"}
    fake.queue(Reply(200, completion(json.dumps(_reply(reminders=[reminder])))))

    result = analyzer.analyze(_batch())

    assert result.reminders[0].due_at == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


def test_openai_logs_no_text_or_key(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer, caplog: pytest.LogCaptureFixture
) -> None:
    fake.queue(Reply(200, completion(json.dumps(_reply()))))
    fake.queue(
        Reply(
            401,
            error_body("Incorrect API key provided.", "invalid_request_error", None),
        )
    )

    with caplog.at_level(logging.DEBUG, logger="wallie.analysis"):
        analyzer.analyze(_batch())
        with pytest.raises(ProviderAuthError):
            analyzer.analyze(_batch())

    assert "quote" not in caplog.text
    assert "ana@example.com" not in caplog.text
    assert API_KEY not in caplog.text


def test_openai_empty_batch_sends_nothing(
    fake: FakeOpenAI, analyzer: OpenAIAnalyzer
) -> None:
    result = analyzer.analyze(conversation())

    assert result.reminders == ()
    assert fake.requests == []


def test_openai_unknown_model_price_needs_prices() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_MODEL|price"):
        OpenAIAnalyzer(
            API_KEY, base_url="http://127.0.0.1:9/v1", model="my-local-model"
        )

    priced = OpenAIAnalyzer(
        API_KEY,
        base_url="http://127.0.0.1:9/v1",
        model="my-local-model",
        input_price_per_1m=Decimal("1"),
        output_price_per_1m=Decimal("2"),
    )
    assert priced.input_price == Decimal("1")


def test_make_analyzer_picks_by_key(fake: FakeOpenAI) -> None:
    assert isinstance(make_analyzer(None), OfflineAnalyzer)
    assert isinstance(make_analyzer(""), OfflineAnalyzer)
    chosen = make_analyzer(API_KEY, fake.base_url, "gpt-4.1-mini")
    assert isinstance(chosen, OpenAIAnalyzer)
    assert chosen.model == "gpt-4.1-mini"
    assert chosen.client.max_retries == 0
