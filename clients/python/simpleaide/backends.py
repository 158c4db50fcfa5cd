"""The ``vault``, ``db`` and ``llm`` commands.

Passphrases and secret values are never taken from the command line (where ``ps`` and the
shell history would show them): they are read from the terminal without echo, or, when
stdin is not a terminal (scripts), passphrases one per line (a new one twice, like at the
terminal) and a value as all of stdin.
"""

from __future__ import annotations

import sys

from simpleaide import tables
from simpleaide.chips import format_age
from simpleaide.safetext import escape
from simpleaide.session import EXIT_OK, CliError, Session, print_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.session import Args


def _read_secret(prompt: str, *, confirm: bool = False) -> str:
    """A line from the terminal without echo, or from stdin; with ``confirm``, a second
    entry (the next line, from stdin) must repeat the first, as a typo would go unseen."""
    if not sys.stdin.isatty():
        read = _read_line
    else:
        import getpass

        read = getpass.getpass
    value = read(f"{prompt}: ")
    if confirm and read(f"{prompt} (again): ") != value:
        raise CliError("the two entries differ; nothing changed")
    return value


def _read_line(prompt: str) -> str:
    """One line of stdin, for the entry ``prompt`` asks for."""
    line = sys.stdin.readline()
    if not line:
        raise CliError(f"expected {prompt.removesuffix(': ').lower()} on stdin, got end of input")
    return line.removesuffix("\n").removesuffix("\r")


# -- vault --------------------------------------------------------------------------------


def _vault_words(status: dict[str, Any]) -> str:
    state = status.get("state")
    if state == "unlocked":
        remaining = status.get("autoLockRemainingMs")
        # Rounded up to the second, as the daemon's chip words it.
        when = (
            f"locks in {format_age(remaining + 999)}" if remaining is not None else "no auto-lock"
        )
        return f"unlocked ({when}; {status.get('secrets')} secrets)"
    if state == "locked":
        retry = int(status.get("retryAfterMs") or 0)
        return "locked" + (f" (next unlock attempt waits {retry / 1000:g} s)" if retry else "")
    return "not set up (simpleaide vault init)"


def _show_vault(status: dict[str, Any], args: Args) -> int:
    if args.json:
        print_json(status)
    else:
        print(f"vault {_vault_words(status)}")
    return EXIT_OK


def vault_status(session: Session, args: Args) -> int:
    """``simpleaide vault status``."""
    status = session.call("vault.status")
    if args.json:
        print_json(status)
        return EXIT_OK
    idle = status.get("idleLockSeconds")
    most = status.get("maxUnlockSeconds")
    print(
        tables.fields(
            [
                ("vault", _vault_words(status)),
                ("file", str(status.get("file"))),
                ("idle lock", f"{idle:g} s" if idle else "never"),
                ("max unlock", f"{most:g} s" if most else "never"),
            ]
        )
    )
    return EXIT_OK


def vault_init(session: Session, args: Args) -> int:
    """``simpleaide vault init``."""
    passphrase = _read_secret("New passphrase", confirm=True)
    return _show_vault(session.call("vault.init", passphrase=passphrase), args)


def vault_unlock(session: Session, args: Args) -> int:
    """``simpleaide vault unlock``."""
    passphrase = _read_secret("Passphrase")
    params: dict[str, Any] = {"passphrase": passphrase}
    if args.ttl is not None:
        params["ttlSeconds"] = args.ttl
    return _show_vault(session.call("vault.unlock", **params), args)


def vault_lock(session: Session, args: Args) -> int:
    """``simpleaide vault lock``."""
    return _show_vault(session.call("vault.lock"), args)


def vault_passwd(session: Session, args: Args) -> int:
    """``simpleaide vault passwd``."""
    old = _read_secret("Current passphrase")
    new = _read_secret("New passphrase", confirm=True)
    status = session.call("vault.changePassphrase", passphrase=old, newPassphrase=new)
    if args.json:
        print_json(status)
    else:
        print("passphrase changed")
    return EXIT_OK


def vault_set(session: Session, args: Args) -> int:
    """``simpleaide vault set NAME``: the value from the terminal (no echo), or all of stdin
    (a PEM key spans lines; one trailing newline is dropped)."""
    if sys.stdin.isatty():
        value = _read_secret(f"Value of {args.name}")
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    result = session.call("vault.set", name=args.name, value=value)
    if args.json:
        print_json(result)
    else:
        print(f"{'replaced' if result['replaced'] else 'stored'} {args.name}")
    return EXIT_OK


def vault_get(session: Session, args: Args) -> int:
    """``simpleaide vault get NAME``: the value alone on stdout, exact for scripts; on a
    terminal with its control characters escaped (a value is data, not terminal commands)."""
    result = session.call("vault.get", name=args.name)
    if args.json:
        print_json(result)
    elif sys.stdout.isatty():
        print(escape(result["value"], keep="\t"))
    else:
        print(result["value"])
    return EXIT_OK


def vault_ls(session: Session, args: Args) -> int:
    """``simpleaide vault ls``."""
    result = session.call("vault.list")
    if args.json:
        print_json(result)
    elif result["names"]:
        print("\n".join(result["names"]))
    else:
        print("the vault holds no secrets", file=sys.stderr)
    return EXIT_OK


def vault_rm(session: Session, args: Args) -> int:
    """``simpleaide vault rm NAME``."""
    result = session.call("vault.delete", name=args.name)
    if args.json:
        print_json(result)
    else:
        print(f"deleted {args.name}")
    return EXIT_OK


# -- database and LLM backends ------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:g} ms"


def db_status(session: Session, args: Args) -> int:
    """``simpleaide db status``."""
    db = session.call("db.status")
    if args.json:
        print_json(db)
    else:
        print(
            tables.fields(
                [
                    ("database", "connected" if db["connected"] else "OFF"),
                    ("type", db.get("type") or "–"),
                    ("env", str(db.get("env"))),
                    ("read-only", "yes" if db.get("readOnly") else "no"),
                    ("latency", _ms(db.get("latencyMs"))),
                    ("error", db.get("error") or "none"),
                    ("checked", tables.local_time(db.get("checkedAt"))),
                ]
            )
        )
    return EXIT_OK


def llm_status(session: Session, args: Args) -> int:
    """``simpleaide llm status [--probe]``."""
    llm = session.call("llm.probe" if args.probe else "llm.status")
    backends = llm.get("backends") or []
    if args.json:
        print_json(llm)
    elif not backends:
        print("no LLM backends configured ([[llm.backends]] in the config file)")
    else:
        rows = [
            [
                b["name"],
                b["kind"],
                "online" if b["online"] else "OFF",
                _ms(b.get("latencyMs")),
                ", ".join(b.get("models") or []) or "–",
                b.get("error") or "",
            ]
            for b in backends
        ]
        print(tables.render(["NAME", "KIND", "STATE", "LATENCY", "MODELS", "ERROR"], rows))
        print(f"{llm['online']}/{llm['total']} online")
    return EXIT_OK
