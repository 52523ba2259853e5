"""The scrubber masks a credential in every form it takes, and cutting comes after scrubbing."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from billing_sync.scrub import MASK, connection_secrets, cut, scrub_data, scrubber

PASSWORD = "pw/with+signs=9"
LOGIN = "acme+pubKEY123"


@pytest.fixture
def scrub():
    return scrubber(connection_secrets(LOGIN, PASSWORD, {"clientId": "client-uuid-4242"}))


@pytest.mark.parametrize(
    "form",
    [
        PASSWORD,
        quote(PASSWORD, safe=""),
        json.dumps(PASSWORD)[1:-1],
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode(),
        base64.urlsafe_b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode().rstrip("="),
        "client-uuid-4242",
    ],
)
def test_every_form_of_a_secret_is_masked(scrub, form):
    assert form not in scrub(f"the API said: {form} was wrong")


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "Bearer", "bearer", "Token"])
def test_authorization_values_are_masked_in_any_case(scrub, scheme):
    unknown = "dW5rbm93bjpjcmVkZW50aWFsMQ=="  # a credential we were not told about
    assert unknown not in scrub(f"Authorization: {scheme} {unknown}")
    assert unknown not in scrub(f"{scheme} {unknown}")


def test_an_echoed_header_is_masked_by_its_name(scrub):
    echoed = '{"message": "bad", "headers": {"Authorization": "Basic Zm9vOmJhcg==", "clientId": "other-id"}}'
    text = scrub(echoed)
    assert "Zm9vOmJhcg==" not in text and "other-id" not in text
    assert "Authorization" in text  # what was masked stays readable


def test_ordinary_words_survive(scrub):
    text = "Basic plan for Acme Corp, public key rotation pending"
    assert scrub(text) == text


def test_extras_named_like_credentials_are_secrets():
    found = connection_secrets(
        "u",
        None,
        {
            "Authorization": "Bearer abcdefgh12345",
            "sqlalchemy_url": "postgresql://app:db-pass-77@db/billing",
            "headers": {"X-Api-Key": "nested-key-99"},
            "timeout": "30",
        },
    )
    assert "Bearer abcdefgh12345" in found and "db-pass-77" in found and "nested-key-99" in found
    assert "30" not in found


def test_scrub_first_then_cut(scrub):
    text = "x" * 1990 + PASSWORD + "y" * 50
    cut_text = cut(scrub(text), 2000)
    assert PASSWORD[:5] not in cut_text.replace("x", "")
    # The wrong order leaks the secret's first half.
    assert PASSWORD[:5] in scrub(cut(text, 2000))


def test_scrub_data_reaches_nested_strings_and_keys(scrub):
    body = {"errors": [{"message": f"pw {PASSWORD}"}], PASSWORD: 1, "n": 3}
    clean = scrub_data(body, scrub)
    assert PASSWORD not in json.dumps(clean)
    assert clean["n"] == 3 and MASK in json.dumps(clean)
