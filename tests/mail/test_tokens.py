"""Tests for token encryption at rest and the Google token refresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httplib2
import pytest
from conftest import RecordedRequest
from cryptography.fernet import Fernet

from wallie.mail.errors import (
    ProviderUnavailable,
    TokenDecryptionFailed,
    TokenKeyMissing,
    TokenRevoked,
    is_permanent,
)
from wallie.mail.tokens import (
    OAuthToken,
    TokenCipher,
    google_credentials,
    load_token_cipher,
    refresh_google_token,
)

EXPIRES = datetime(2024, 5, 6, 13, 0, tzinfo=UTC)
TOKEN = OAuthToken(
    access_token="ya29.access",
    refresh_token="1//refresh",
    expires_at=EXPIRES,
    scopes=("https://www.googleapis.com/auth/gmail.readonly",),
)


def new_key() -> str:
    return Fernet.generate_key().decode()


def test_encrypt_round_trip() -> None:
    cipher = TokenCipher(new_key())

    stored = cipher.encrypt(TOKEN)

    assert "ya29" not in stored
    assert cipher.decrypt(stored) == TOKEN


def test_rotation_moves_to_first_key() -> None:
    old_key, new = new_key(), new_key()
    stored = TokenCipher(old_key).encrypt(TOKEN)
    both = TokenCipher(f"{new}, {old_key}")

    rotated = both.rotate(stored)

    assert both.decrypt(stored) == TOKEN
    assert TokenCipher(new).decrypt(rotated) == TOKEN
    with pytest.raises(TokenDecryptionFailed):
        TokenCipher(old_key).decrypt(rotated)


def test_wrong_key_names_variable() -> None:
    stored = TokenCipher(new_key()).encrypt(TOKEN)

    with pytest.raises(TokenDecryptionFailed) as raised:
        TokenCipher(new_key()).decrypt(stored, account="acct-9")

    assert raised.value.variable == "WALLIE_TOKEN_KEYS"
    assert raised.value.account == "acct-9"
    assert "WALLIE_TOKEN_KEYS" in str(raised.value)
    assert is_permanent(raised.value) is True


@pytest.mark.parametrize("setting", [None, "", " , "])
def test_missing_key_explains_generation(setting: str | None) -> None:
    with pytest.raises(TokenKeyMissing) as raised:
        TokenCipher(setting)

    assert "WALLIE_TOKEN_KEYS" in str(raised.value)
    assert "Fernet.generate_key()" in str(raised.value)


def test_malformed_key_rejected() -> None:
    with pytest.raises(TokenKeyMissing, match="key number 2 is invalid"):
        TokenCipher(f"{new_key()},not-a-key")


def test_cipher_from_environment() -> None:
    key = new_key()

    cipher = load_token_cipher({"WALLIE_TOKEN_KEYS": key})

    assert cipher.decrypt(cipher.encrypt(TOKEN)) == TOKEN
    with pytest.raises(TokenKeyMissing):
        load_token_cipher({})


def test_token_repr_hides_secrets() -> None:
    assert "ya29" not in repr(TOKEN)
    assert "refresh" not in repr(TOKEN)


def test_token_expiry_with_leeway() -> None:
    assert TOKEN.is_expired(EXPIRES - timedelta(seconds=30)) is True
    assert TOKEN.is_expired(EXPIRES - timedelta(minutes=5)) is False


def google_route(status: int, body: dict[str, Any]) -> Any:
    def route(request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        return status, {}, json.dumps(body).encode()

    return route


def test_google_refresh_success(loopback: Any) -> None:
    server = loopback(google_route(200, {"access_token": "ya29.new", "expires_in": 3599}))
    credentials = google_credentials(
        TOKEN, client_id="cid", client_secret="cs", token_uri=f"{server.url}token"
    )

    refreshed = refresh_google_token(credentials, TOKEN, http=httplib2.Http(), account="a1")

    assert refreshed.access_token == "ya29.new"
    assert refreshed.refresh_token == "1//refresh"
    assert refreshed.expires_at is not None
    assert refreshed.expires_at.tzinfo is UTC
    form = parse_qs(server.requests[0].body.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["1//refresh"]


def test_google_refresh_invalid_grant(loopback: Any) -> None:
    body = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    server = loopback(google_route(400, body))
    credentials = google_credentials(
        TOKEN, client_id="cid", client_secret="cs", token_uri=f"{server.url}token"
    )

    with pytest.raises(TokenRevoked) as raised:
        refresh_google_token(credentials, TOKEN, http=httplib2.Http(), account="a1")

    assert raised.value.reason == "invalid_grant"
    assert raised.value.provider == "gmail"


def test_google_refresh_server_error_transient(loopback: Any) -> None:
    server = loopback(google_route(503, {"error": "internal_failure"}))
    credentials = google_credentials(
        TOKEN, client_id="cid", client_secret="cs", token_uri=f"{server.url}token"
    )

    with pytest.raises(ProviderUnavailable) as raised:
        refresh_google_token(credentials, TOKEN, http=httplib2.Http(), account="a1")

    assert is_permanent(raised.value) is False
