"""The daemon-wide warnings registry: one warning per source, listed in a stable order."""

from __future__ import annotations

import threading

from simpleaided.services.warnings import Warnings


def test_warnings_are_listed_in_the_order_they_were_raised() -> None:
    warnings = Warnings()
    assert list(warnings) == [] and len(warnings) == 0
    warnings.set("workspace /a", "workspace /a is not served: gone")
    warnings.set("watch limit", "raise fs.inotify.max_user_watches")
    warnings.set("vault", "the vault cannot be used: unsafe folder")
    assert list(warnings) == [
        "workspace /a is not served: gone",
        "raise fs.inotify.max_user_watches",
        "the vault cannot be used: unsafe folder",
    ]
    assert len(warnings) == 3
    assert warnings.messages() == tuple(warnings)


def test_a_source_holds_one_warning_and_a_new_one_goes_last() -> None:
    warnings = Warnings()
    warnings.set("reload", "configuration not reloaded: invalid")
    warnings.set("vault", "the vault cannot be used")
    warnings.set("reload", "configuration not reloaded: cannot read it")
    assert list(warnings) == [
        "the vault cannot be used",
        "configuration not reloaded: cannot read it",
    ]
    assert warnings.get("reload") == "configuration not reloaded: cannot read it"
    assert warnings.get("watch limit") is None


def test_the_same_warning_again_changes_nothing() -> None:
    warnings = Warnings()
    warnings.set("reload", "configuration not reloaded: invalid")
    warnings.set("vault", "the vault cannot be used")
    before = warnings.messages()
    warnings.set("reload", "configuration not reloaded: invalid")
    # Kept in place, and the very same tuple: the status document sees no change.
    assert warnings.messages() is before
    assert list(warnings) == ["configuration not reloaded: invalid", "the vault cannot be used"]


def test_clearing_a_source_leaves_the_others_even_with_alike_messages() -> None:
    warnings = Warnings()
    warnings.set("workspace /a", "workspace /a is not served: gone")
    warnings.set("workspace /a/b", "workspace /a/b is not served: gone")
    warnings.set("duplicate run r1 in /a", "workspace /a is not served: gone")
    warnings.clear("workspace /a")
    assert list(warnings) == [
        "workspace /a/b is not served: gone",
        "workspace /a is not served: gone",
    ]
    before = warnings.messages()
    warnings.clear("workspace /a")  # cleared already: nothing to do
    warnings.clear("never set")
    assert warnings.messages() is before
    warnings.clear("workspace /a/b")
    warnings.clear("duplicate run r1 in /a")
    assert list(warnings) == [] and warnings.messages() == ()


def test_a_cleared_source_raised_again_goes_last() -> None:
    warnings = Warnings()
    warnings.set("a", "first")
    warnings.set("b", "second")
    warnings.clear("a")
    warnings.set("a", "first")
    assert list(warnings) == ["second", "first"]


def test_warnings_raised_from_threads_are_all_kept() -> None:
    # The watcher raises the watch limit's warning from a worker thread.
    warnings = Warnings()
    go = threading.Barrier(8)

    def raise_some(n: int) -> None:
        go.wait()
        for i in range(200):
            warnings.set(f"t{n}-{i}", f"warning {n}/{i}")
            if i % 2:
                warnings.clear(f"t{n}-{i}")

    threads = [threading.Thread(target=raise_some, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(warnings) == 8 * 100
    assert sorted(warnings) == sorted(
        f"warning {n}/{i}" for n in range(8) for i in range(0, 200, 2)
    )
    assert warnings.messages() == tuple(warnings)
