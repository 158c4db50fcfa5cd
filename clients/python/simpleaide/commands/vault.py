"""``simpleaide vault``: the encrypted secrets vault.

Passphrases and secret values are never taken from the command line (where ``ps`` and the
shell history would show them): they are read from the terminal without echo, or, when
stdin is not a terminal (scripts), passphrases one per line (a new one twice, like at the
terminal) and a value as all of stdin.
"""

from __future__ import annotations

import sys

from simpleaide import tables
from simpleaide.chips import format_age
from simpleaide.commands import positive_float, reply
from simpleaide.safetext import escape
from simpleaide.session import CliError, Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands
    from simpleaide.session import Args

SECRET_INPUT = (
    "Passphrases and values are read from the terminal without echo; when stdin is not\n"
    "a terminal (scripts), passphrases one per line (a new one twice, on two lines that\n"
    "must match) and a value as all of stdin (less one trailing newline). Never from\n"
    "the command line."
)
SECRET_NAME = "the secret's name: 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit"


def register(tree: Commands) -> None:
    """The ``vault`` commands."""
    vault = tree.group("vault", "the encrypted secrets vault")
    vault.add("status", "locked or not, when it locks, where it lives", vault_status)
    vault.add(
        "init",
        "create the vault (asks for a new passphrase twice)",
        vault_init,
        description="Create an empty vault, encrypted under a new passphrase (8 characters or\n"
        "more; asked twice). It starts unlocked.\n" + SECRET_INPUT,
    )
    unlock = vault.add(
        "unlock",
        "unlock the vault (asks for the passphrase)",
        vault_unlock,
        description="Unlock the vault. It locks itself again after the idle time (vault.\n"
        "idle_lock_seconds; --ttl for this unlock) and at most vault.max_unlock_seconds\n"
        "after unlocking. After a wrong passphrase each further attempt waits longer.\n"
        + SECRET_INPUT,
    )
    unlock.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=positive_float,
        help="lock after SECONDS unused (instead of the configured idle time)",
    )
    vault.add("lock", "lock the vault now (forget the key)", vault_lock)
    vault.add(
        "passwd",
        "change the passphrase (asks for the current one, then the new one twice)",
        vault_passwd,
        description="Re-encrypt the vault under a new passphrase.\n" + SECRET_INPUT,
    )
    set_ = vault.add(
        "set",
        "store a secret (asks for the value)",
        vault_set,
        description="Store a secret under NAME, replacing one of the same name. Settings\n"
        "refer to it as vault:NAME (a database password, an LLM API key).\n" + SECRET_INPUT,
    )
    set_.add_argument("name", metavar="NAME", help=SECRET_NAME)
    get = vault.add("get", "print a secret's value (vault unlocked)", vault_get)
    get.add_argument("name", metavar="NAME", help=SECRET_NAME)
    vault.add("ls", "list the secrets' names (vault unlocked)", vault_ls)
    rm = vault.add("rm", "delete a secret (vault unlocked)", vault_rm)
    rm.add_argument("name", metavar="NAME", help=SECRET_NAME)


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


def _vault_words(status: dict[str, Any]) -> str:
    state = status.get("state")
    if state == "unlocked":
        remaining = status.get("autoLockRemainingMs")
        # Rounded up to the second, as the daemon's chip words it.
        when = (
            f"locks in {format_age(remaining + 999)}" if remaining is not None else "no auto-lock"
        )
        return f"unlocked ({when}; {tables.plural(int(status.get('secrets') or 0), 'secret')})"
    if state == "locked":
        retry = int(status.get("retryAfterMs") or 0)
        return "locked" + (f" (next unlock attempt waits {retry / 1000:g} s)" if retry else "")
    return "not set up (simpleaide vault init)"


def _show_state(status: dict[str, Any]) -> None:
    print(f"vault {_vault_words(status)}")


def vault_status(session: Session, args: Args) -> int:
    """``simpleaide vault status``."""
    return reply(args, session.call("vault.status"), _show_status)


def _show_status(status: dict[str, Any]) -> None:
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


def vault_init(session: Session, args: Args) -> int:
    """``simpleaide vault init``."""
    passphrase = _read_secret("New passphrase", confirm=True)
    return reply(args, session.call("vault.init", passphrase=passphrase), _show_state)


def vault_unlock(session: Session, args: Args) -> int:
    """``simpleaide vault unlock``."""
    passphrase = _read_secret("Passphrase")
    params: dict[str, Any] = {"passphrase": passphrase}
    if args.ttl is not None:
        params["ttlSeconds"] = args.ttl
    return reply(args, session.call("vault.unlock", **params), _show_state)


def vault_lock(session: Session, args: Args) -> int:
    """``simpleaide vault lock``."""
    return reply(args, session.call("vault.lock"), _show_state)


def vault_passwd(session: Session, args: Args) -> int:
    """``simpleaide vault passwd``."""
    old = _read_secret("Current passphrase")
    new = _read_secret("New passphrase", confirm=True)
    status = session.call("vault.changePassphrase", passphrase=old, newPassphrase=new)
    return reply(args, status, lambda status: print("passphrase changed"))


def vault_set(session: Session, args: Args) -> int:
    """``simpleaide vault set NAME``: the value from the terminal (no echo), or all of stdin
    (a PEM key spans lines; one trailing newline is dropped)."""
    if sys.stdin.isatty():
        value = _read_secret(f"Value of {args.name}")
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    result = session.call("vault.set", name=args.name, value=value)
    return reply(
        args,
        result,
        lambda result: print(f"{'replaced' if result['replaced'] else 'stored'} {args.name}"),
    )


def vault_get(session: Session, args: Args) -> int:
    """``simpleaide vault get NAME``: the value alone on stdout, exact for scripts; on a
    terminal with its control characters escaped (a value is data, not terminal commands)."""

    def show(result: dict[str, Any]) -> None:
        if sys.stdout.isatty():
            print(escape(result["value"], keep="\t"))
        else:
            print(result["value"])

    return reply(args, session.call("vault.get", name=args.name), show)


def vault_ls(session: Session, args: Args) -> int:
    """``simpleaide vault ls``."""

    def show(result: dict[str, Any]) -> None:
        if result["names"]:
            print("\n".join(result["names"]))
        else:
            print("the vault holds no secrets", file=sys.stderr)

    return reply(args, session.call("vault.list"), show)


def vault_rm(session: Session, args: Args) -> int:
    """``simpleaide vault rm NAME``."""
    result = session.call("vault.delete", name=args.name)
    return reply(args, result, lambda result: print(f"deleted {args.name}"))
