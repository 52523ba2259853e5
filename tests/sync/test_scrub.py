"""The scrubber masks a credential in every form it takes, and cutting comes after scrubbing."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from billing_sync.scrub import (
    MASK,
    MAX_DEPTH,
    TOO_DEEP,
    connection_secrets,
    cut,
    deeper_than,
    scrub_data,
    scrubber,
)

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


# -- forms an API may echo in another spelling -------------------------------------------------------
CLIENT_ID = "5f3c2a10-9b7e-4d21-a6c8-0e4f1b2d3c4a"


@pytest.mark.parametrize(
    "form",
    [
        CLIENT_ID.upper(),  # an API that upper-cases the GUID it echoes
        CLIENT_ID[:18] + CLIENT_ID[18:].upper(),  # mixed case
        json.dumps(PASSWORD)[1:-1].replace("/", "\\/"),  # JSON that escapes its slashes
        quote(PASSWORD, safe="").lower(),  # lower-case escapes (and, here, letters)
        quote(PASSWORD, safe="").replace("%2F", "%2f"),  # lower-case escapes only
        quote(PASSWORD).replace("%2B", "%2b"),  # the slash left as is
        base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode().upper(),
    ],
)
def test_every_spelling_of_a_long_secret_is_masked(form):
    scrub = scrubber(connection_secrets(LOGIN, PASSWORD, {"clientId": CLIENT_ID}))
    assert scrub(f'{{"echo": "{form}"}}') == f'{{"echo": "{MASK}"}}'


def test_a_short_secret_stays_case_sensitive_and_whole():
    scrub = scrubber(connection_secrets("acme+pubKEY123", PASSWORD))
    assert scrub("ACME acme Acme acmes") == f"ACME {MASK} Acme acmes"


def test_many_secrets_are_one_pass():
    secrets = [f"secret-value-{i:03d}-xyz" for i in range(200)]
    scrub = scrubber(secrets)
    text = " ".join(s.upper() for s in secrets[::7])
    assert scrub(text) == " ".join([MASK] * len(secrets[::7]))


def test_a_deep_body_is_bounded_not_a_recursion_error(scrub):
    body: object = f"pw {PASSWORD}"
    for _ in range(900):
        body = {"errors": [body]}
    clean = scrub_data(body, scrub)
    text = json.dumps(clean, ensure_ascii=False)  # as deep as MAX_DEPTH, no more: printable
    assert TOO_DEEP in text and text.count("[") <= MAX_DEPTH
    assert deeper_than(body) and not deeper_than(clean, MAX_DEPTH)
    assert not deeper_than({"a": [{"b": 1}]}, 3) and deeper_than({"a": [{"b": [1]}]}, 3)
