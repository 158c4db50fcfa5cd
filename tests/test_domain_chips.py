"""The chips' words, from scripted status documents (pure: no daemon)."""

from __future__ import annotations

from typing import Any

import pytest

from simpleaided.domain import chips
from simpleaided.domain.status import Chip

DB_OFF = {"connected": False, "type": None, "env": "DEV", "readOnly": False, "error": "x"}


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "env": "DEV",
        "runs": {"active": 0, "pending": 0, "total": 0, "last": None},
        "vault": {"state": "uninitialized", "autoLockRemainingMs": None},
        "db": DB_OFF,
        "llm": {"online": 0, "total": 0, "backends": []},
    }
    return {**base, **changes}


def chip(name: str, **changes: Any) -> dict[str, str]:
    (found,) = [c for c in chips.chips(doc(**changes)) if c["name"] == name]
    Chip.model_validate(found)
    assert found["href"] == f"#/{name}"
    return found


def backend(name: str, online: bool, error: str | None = None) -> dict[str, Any]:
    return {"name": name, "online": online, "error": error}


@pytest.mark.parametrize(
    ("name", "changes", "text", "level", "tooltip"),
    [
        ("env", {}, "DEV 🟢", "ok", "DEV profile"),
        ("env", {"env": "PROD"}, "PROD 🔴", "bad", "PROD profile: the database is read-only"),
        ("vault", {}, "Vault –", "off", "No vault yet: simpleaide vault init"),
        ("vault", {"vault": {"state": "locked"}}, "Vault 🔒", "info", "Vault locked"),
        (
            "vault",
            {"vault": {"state": "unlocked", "autoLockRemainingMs": 245_000}},
            "Vault 🔓",
            "warn",
            "Vault unlocked: locks in 4m",
        ),
        (
            "vault",
            {"vault": {"state": "unlocked", "autoLockRemainingMs": None}},
            "Vault 🔓",
            "warn",
            "Vault unlocked: no auto-lock",
        ),
        (
            "db",
            {
                "db": {
                    "connected": True,
                    "type": "postgres",
                    "env": "PROD",
                    "readOnly": True,
                    "latencyMs": 1.5,
                }
            },
            "DB ✅ RO",
            "ok",
            "PROD database: read-only (postgres, 1.5 ms)",
        ),
        (
            "db",
            {"db": {**DB_OFF, "error": "connection refused"}},
            "DB OFF",
            "off",
            "DEV database: off (connection refused)",
        ),
        ("llm", {}, "LLM –", "off", "LLM: no backends configured"),
        (
            "llm",
            {
                "llm": {
                    "online": 1,
                    "total": 2,
                    "backends": [
                        backend("ollama", True),
                        backend("openai", False, "HTTP 503: loading model"),
                    ],
                }
            },
            "LLM 1/2",
            "warn",
            "LLM: ollama online, openai: HTTP 503: loading model",
        ),
        (
            "llm",
            {"llm": {"online": 0, "total": 1, "backends": [backend("a", False, None)]}},
            "LLM 0/1",
            "bad",
            "LLM: a: offline",
        ),
        ("runs", {}, "Run –", "off", "No runs yet"),
    ],
)
def test_chip_words(
    name: str, changes: dict[str, Any], text: str, level: str, tooltip: str
) -> None:
    found = chip(name, **changes)
    assert (found["text"], found["level"], found["tooltip"]) == (text, level, tooltip)


def test_run_chips_say_what_the_last_run_did_and_when() -> None:
    last = {"id": "r", "status": "failed", "ageMs": 125_000, "errorMessage": "tests broke"}
    found = chip("runs", runs={"active": 0, "last": last})
    assert found["text"] == "Run ✗" and found["level"] == "bad"
    assert found["tooltip"] == "Last run failed 2m ago: tests broke"
    running = {**last, "status": "running", "ageMs": 5000, "errorMessage": None}
    busy = chip("runs", runs={"active": 2, "last": running})
    assert busy["text"] == "Run ⏳ 2"
    assert busy["tooltip"] == "2 runs active; last run running 5s ago"


@pytest.mark.parametrize(
    ("ms", "words"),
    [
        (None, "?"),
        (-5, "0s"),
        (59_999, "59s"),
        (60_000, "1m"),
        (7_200_000, "2h"),
        (2 * 86_400_000 + 1, "2d"),
    ],
)
def test_ages_are_short(ms: int | None, words: str) -> None:
    assert chips.format_age(ms) == words


def test_reused_chips_still_follow_every_change() -> None:
    db_on = {"connected": True, "type": "sqlite", "env": "DEV", "readOnly": False}
    last = {"id": "r", "status": "failed", "ageMs": 59_000, "errorMessage": None}
    first = chips.chips(doc(db=db_on, runs={"active": 0, "last": last}))
    again = chips.chips(doc(db=db_on, runs={"active": 0, "last": dict(last)}))
    assert again[2] is first[2] and again[4] is first[4]  # same words: the same chip objects
    later = chips.chips(
        doc(db=dict(db_on, connected=False), runs={"active": 0, "last": {**last, "ageMs": 60_000}})
    )
    assert later[2]["text"] == "DB OFF"
    assert later[4]["tooltip"] == "Last run failed 1m ago"
    vault = chips.chips(doc(vault={"state": "unlocked", "autoLockRemainingMs": 61_000}))[1]
    assert vault["tooltip"] == "Vault unlocked: locks in 1m"
    vault = chips.chips(doc(vault={"state": "unlocked", "autoLockRemainingMs": 59_000}))[1]
    assert vault["tooltip"] == "Vault unlocked: locks in 59s"
