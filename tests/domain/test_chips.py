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


def backend(
    name: str, online: bool, error: str | None = None, checked: bool = True
) -> dict[str, Any]:
    checked_at = "2026-12-07T14:00:00.000Z" if checked else None
    return {"name": name, "online": online, "error": error, "checkedAt": checked_at}


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
            {
                "db": {
                    "connected": True,
                    "type": "postgres",
                    "env": "PROD",
                    "readOnly": True,
                    "latencyMs": 0.8,
                    "warnings": [],
                }
            },
            "DB ✅ RO",
            "ok",
            "PROD database: read-only (postgres, 0.8 ms)",
        ),
        (
            "db",
            {
                "db": {
                    "connected": True,
                    "type": "postgres",
                    "env": "PROD",
                    "readOnly": True,
                    "latencyMs": 0.8,
                    "warnings": ["the role is a superuser", "it can run programs"],
                }
            },
            "DB ⚠️ RO",
            "warn",
            "PROD database: read-only (postgres, 0.8 ms); "
            "warning: the role is a superuser; it can run programs",
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
        (
            "llm",
            {
                "llm": {
                    "online": 0,
                    "total": 2,
                    "backends": [
                        backend("a", False, checked=False),
                        backend("b", False, checked=False),
                    ],
                }
            },
            "LLM …",
            "checking",
            "LLM: checking 2 backends, no answer yet",
        ),
        (
            "llm",
            {
                "llm": {
                    "online": 1,
                    "total": 2,
                    "backends": [backend("a", True), backend("b", False, checked=False)],
                }
            },
            "LLM 1/2",
            "checking",
            "LLM: a online, b: checking, no answer yet",
        ),
        (
            "llm",
            {
                "llm": {
                    "online": 0,
                    "total": 2,
                    "backends": [
                        backend("a", False, "refused"),
                        backend("b", False, checked=False),
                    ],
                }
            },
            "LLM 0/2",
            "bad",
            "LLM: a: refused, b: checking, no answer yet",
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
    assert busy["tooltip"] == "2 runs running; last run running 5s ago"


FAILED_LAST = {"id": "F", "status": "failed", "ageMs": 125_000, "errorMessage": "boom"}


@pytest.mark.parametrize(
    ("runs", "tooltip"),
    [
        (  # one run: named, and the last run is that one (said once)
            {
                "active": 1,
                "pending": 0,
                "activeRuns": [{"id": "A", "title": "fix the parser", "status": "running"}],
                "last": {"id": "A", "status": "running", "ageMs": 5000, "errorMessage": None},
            },
            "1 run running: A “fix the parser”",
        ),
        (  # pending ones counted (count_pending_as_active): each says its status
            {
                "active": 3,
                "pending": 1,
                "activeRuns": [
                    {
                        "id": "C",
                        "title": "a title much longer than a tooltip has room for",
                        "status": "running",
                    },
                    {"id": "B", "title": None, "status": "pending"},
                    {"id": "A", "title": "line\nbreak", "status": "running"},
                ],
                "last": FAILED_LAST,
            },
            "3 runs active: C “a title much longer than a tooltip has…” (running), "
            "B (pending), A “line break” (running); last run failed 2m ago: boom",
        ),
        (  # too many to name: counted
            {"active": 5, "pending": 0, "activeRuns": [], "last": FAILED_LAST},
            "5 runs running; last run failed 2m ago: boom",
        ),
        (
            {"active": 5, "pending": 2, "activeRuns": [], "last": FAILED_LAST},
            "5 runs active; last run failed 2m ago: boom",
        ),
    ],
)
def test_the_run_chip_names_the_active_runs_while_they_are_few(
    runs: dict[str, Any], tooltip: str
) -> None:
    found = chip("runs", runs=runs)
    assert found["text"] == f"Run ⏳ {runs['active']}" and found["level"] == "warn"
    assert found["tooltip"] == tooltip


def test_counts_in_words_agree_with_the_number() -> None:
    assert [chips.plural(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    one = chip("runs", runs={"active": 1, "pending": 0, "activeRuns": [], "last": None})
    assert one["tooltip"] == "1 run running"


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


def _doc(age_ms: int | None = None, lock_in_ms: int | None = None) -> dict[str, Any]:
    last = None if age_ms is None else {"status": "failed", "ageMs": age_ms}
    return {"runs": {"last": last}, "vault": {"autoLockRemainingMs": lock_in_ms}}


@pytest.mark.parametrize(
    ("age_ms", "lock_in_ms", "until"),
    [
        (None, None, None),  # nothing in the words moves with time
        (0, None, 1000),  # "0s ago" becomes "1s ago"
        (250, None, 750),
        (59_999, None, 1),  # "59s" becomes "1m"
        (60_000, None, 60_000),
        (90_000, None, 30_000),
        (3_600_000, None, 3_600_000),
        (48 * 3_600_000 - 1, None, 1),
        (48 * 3_600_000, None, 86_400_000),
        (None, 900_000, 1000),  # "locks in 15m" (rounded up) becomes "14m" in a second
        (None, 899_001, 1),
        (None, 59_001, 1),  # "1m" becomes "59s"
        (None, 30_500, 500),
        (None, 0, 1000),  # "0s": the words move on once the vault locks, an event
        (500, 30_200, 200),  # the soonest of the two
    ],
)
def test_when_the_words_next_change_with_time_alone(
    age_ms: int | None, lock_in_ms: int | None, until: int | None
) -> None:
    doc = _doc(age_ms, lock_in_ms)
    assert chips.next_words_change_ms(doc) == until
    if until is not None:
        later = _doc(
            None if age_ms is None else age_ms + until,
            None if lock_in_ms is None else max(lock_in_ms - until, 0),
        )
        earlier = _doc(
            None if age_ms is None else age_ms + until - 1,
            None if lock_in_ms is None else lock_in_ms - until + 1,
        )
        words = [(c["text"], c["tooltip"]) for c in _chips_of(doc)]
        assert [(c["text"], c["tooltip"]) for c in _chips_of(earlier)] == words
        if lock_in_ms != 0:
            assert [(c["text"], c["tooltip"]) for c in _chips_of(later)] != words


def _chips_of(partial: dict[str, Any]) -> list[dict[str, str]]:
    vault = partial["vault"]
    state = "unlocked" if vault["autoLockRemainingMs"] is not None else "locked"
    runs = {"active": 0, "last": partial["runs"]["last"] and {**partial["runs"]["last"], "id": "x"}}
    return [
        chips.vault_chip({**vault, "state": state}),
        chips.runs_chip(runs),
    ]
