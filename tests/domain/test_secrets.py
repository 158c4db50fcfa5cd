"""Secrets in settings and text: vault references, the URL passwords found, one scrub policy."""

from __future__ import annotations

import pytest

from simpleaided.domain.errors import NotFound
from simpleaided.domain.secrets import (
    MASK,
    VAULT_REF,
    SecretResolver,
    is_vault_ref,
    scrub,
    url_secrets,
    vault_name,
)


def test_a_vault_reference_names_a_secret() -> None:
    assert VAULT_REF == "vault:"
    assert vault_name("vault:pg-prod") == "pg-prod"
    assert vault_name("vault:") == ""
    assert vault_name("postgresql://h/db") is None
    assert vault_name("Vault:x") is None  # the prefix is spelled one way
    assert is_vault_ref("vault:k") is True
    assert is_vault_ref("vault:") is False  # a reference needs a name
    assert is_vault_ref("sk-literal-key") is False


def test_a_plain_function_is_a_resolver() -> None:
    def resolve(reference: str) -> str:
        if reference != "vault:k":
            raise NotFound(reference)
        return "the-secret"

    resolver: SecretResolver = resolve
    assert resolver("vault:k") == "the-secret"
    with pytest.raises(NotFound):
        resolver("vault:other")


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("postgresql://bob:pw1@h/db", {"pw1"}),
        # as written and decoded (and the pieces of the text meant as the password)
        ("postgresql://bob:p%40ss@h/db", {"p%40ss", "p@ss", "40ss"}),
        ("postgresql://h/db?password=q1&sslmode=require", {"q1"}),
        ("postgresql://h/db?password=top%zzsecret", {"top%zzsecret"}),  # undecodable
        ("postgresql://bob@h/db", set()),
        ("postgresql://bob:@h/db?password=", set()),  # empty ones hide nothing
        # urlsplit refuses it: no error, and the password meant is still found
        ("http://u:secret@[::1/x", {"secret"}),
    ],
)
def test_url_secrets(url: str, found: set[str]) -> None:
    assert url_secrets(url) == found


def test_a_password_libpq_reads_as_a_query_is_found_whole_and_in_pieces() -> None:
    # libpq reads host "localhost", port 99, dbname "Secretdb" and sslmode
    # "Topsecret@127.0.0.1:1/db": the password meant is "99/Secretdb?sslmode=Topsecret".
    url = "postgresql://localhost:99/Secretdb?sslmode=Topsecret@127.0.0.1:1/db"
    found = url_secrets(url)
    assert {"99/Secretdb?sslmode=Topsecret", "Secretdb", "Topsecret"} <= found
    error = 'invalid sslmode value: "Topsecret@127.0.0.1:1/db"'
    assert "Topsecret" not in scrub(error, found)


def test_scrub_masks_every_secret_and_every_url_or_conninfo_password() -> None:
    text = "postgresql://bob:pw1@h/db failed for s3cret and s3cret-longer; password=abc x"
    assert scrub(text, ["s3cret", "s3cret-longer", ""]) == (
        "postgresql://bob:***@h/db failed for *** and ***; password=*** x"
    )
    assert scrub("host=h password='a b\\'c' port=5", []) == f"host=h password={MASK} port=5"
    assert scrub("PASSWORD = hunter22 user=x", []) == f"PASSWORD = {MASK} user=x"


def test_scrub_masks_the_longest_secret_first_and_leaves_no_part_of_it() -> None:
    # Shortest first would leave "***-longer" and, worse, "key-***" would hide nothing of
    # the longer secret's other half; longest first masks the whole.
    assert scrub("got key-abcdef", ["abc", "key-abcdef"]) == f"got {MASK}"
    assert scrub("got key-abcdef", ("key-abcdef", "abc")) == f"got {MASK}"
    assert scrub("abc then key-abcdef", iter(["abc", "key-abcdef"])) == f"{MASK} then {MASK}"


def test_a_short_secret_is_masked_only_where_it_stands_alone() -> None:
    assert scrub("HTTP 401: unauthorized for u", ["u"]) == f"HTTP 401: unauthorized for {MASK}"
    assert scrub("user ab, table abc", ["ab"]) == f"user {MASK}, table abc"
    assert scrub("a.b (x)", ["x", "a.b"]) == f"{MASK} ({MASK})"


def test_scrub_leaves_text_without_secrets_alone() -> None:
    text = "connection refused (127.0.0.1:5432); redirects to http://h:8080/v1/models"
    assert scrub(text, []) == text
    assert scrub(text, ["", "absent-secret"]) == text
