"""The CLI's side of a command: its connection to the daemon, its errors and exit codes.

A ``Session`` finds the socket (``--socket``, ``SIMPLEAIDE_SOCKET``, the default) and starts a
daemon when none answers, unless ``--no-spawn``. Errors end as one line on stderr::

    0 ok · 1 an error from the daemon (or the CLI's own, ``CliError``) · 2 bad usage ·
    3 no daemon answers
"""

from __future__ import annotations

import os

from simpleaide import paths
from simpleaide.client import (
    Client,
    ClientError,
    DaemonUnreachable,
    InvalidParams,
    NotFound,
    RpcError,
)
from simpleaide.safetext import escape

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    # Parsed arguments: an ``argparse.Namespace``, or a ``SimpleNamespace`` on the fast path.
    Args = Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


# The parameters that carry a whole run id (``before`` only in ``runs.*``: the grid's
# ``db.rows`` pages with a cursor of that name), and what one looks like (``names.RUN_ID_RE``
# in the daemon, which the client does not import).
RUN_ID_PARAMS = ("runId",)
RUNS_RUN_ID_PARAMS = ("runId", "before")
RUN_ID_EXAMPLE = "20261124T101500123Z-1a2b3c4d"
_HEX = frozenset("0123456789abcdef")


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a whole run id (``[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}``); checked by
    hand, as ``re`` is not otherwise imported on the status path."""
    return (
        len(text) == len(RUN_ID_EXAMPLE)
        and text.isascii()
        and text[:8].isdigit()
        and text[8] == "T"
        and text[9:18].isdigit()
        and text[18:20] == "Z-"
        and _HEX.issuperset(text[20:])
    )


# The command line as typed, for the command a refusal suggests (``remember_command_line``).
command_line: list[str] | None = None


def remember_command_line(argv: list[str]) -> None:
    """Keep ``simpleaide ARGV`` as the command being run, for the errors that suggest
    running it again with an option."""
    global command_line
    command_line = ["simpleaide", *argv]


def replace_run_id(typed: str, run_id: str) -> None:
    """Put the whole ``run_id`` in the place of the ``RUN_ID`` typed (``latest``, ``@``, a
    prefix) in the command line remembered: a command suggested again then names the run
    meant, not the one ``latest`` would name by then. ``RUN_ID`` is a command's first
    operand: of the tokens equal to ``typed`` (before a ``--``), the first that follows no
    option (which might take it as its value), else the first."""
    if command_line is None:
        return
    end = command_line.index("--") if "--" in command_line else len(command_line)
    places = [i for i in range(1, end) if command_line[i] == typed]
    if not places:
        return
    operands = [i for i in places if not command_line[i - 1].startswith("-")]
    command_line[(operands or places)[0]] = run_id


class CliError(Exception):
    """A problem found by the CLI itself (an unreadable file, an unknown step name)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Session:
    """The CLI's connection: resolves the socket and starts a daemon when none answers.

    A daemon that was already running is asked its protocol version first, and a mismatch is
    said on stderr, except for commands that opt out (``check_version``): ``status`` is run
    by status lines every few seconds, where nobody reads stderr and every call counts.
    """

    def __init__(self, args: Args, *, check_version: bool = True) -> None:
        self.socket_path = paths.socket_path(args.socket)
        self.spawn = not args.no_spawn
        self.timeout: float = args.timeout
        self.check_version = check_version
        self._client: Client | None = None

    def client(self) -> Client:
        """A connected client, starting the daemon first if needed (and allowed)."""
        if self._client is not None:
            return self._client
        client = Client(self.socket_path, timeout=self.timeout)
        try:
            client.connect()
        except DaemonUnreachable:
            if not self.spawn:
                raise DaemonUnreachable(
                    f"no daemon answers on {self.socket_path} "
                    f"(start it with: simpleaide daemon start)"
                ) from None
            from simpleaide.spawn import start_daemon

            start_daemon(self.socket_path)  # the same installation: the same version
            client.connect()
        else:
            if self.check_version:
                warn_on_version_mismatch(client)
        self._client = client
        return client

    def reset(self, *, spawn: bool) -> None:
        """Drop the connection (the daemon went away); the next call connects anew, and
        starts a daemon only if ``spawn``."""
        self.close()
        self._client = None
        self.spawn = spawn

    def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` on the daemon (see ``Client.call``). A run it does not know that
        lies in the current folder's workspace, which it does not serve, is said so. A run
        id that cannot be one is refused here, in words, without asking."""
        for key in RUNS_RUN_ID_PARAMS if method.startswith("runs.") else RUN_ID_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and not is_run_id(value):
                raise CliError(
                    f"no run {value[:80]!r}: a run id looks like {RUN_ID_EXAMPLE} "
                    "(see simpleaide runs ls)"
                )
        refuse_non_utf8(params)
        try:
            return self.client().call(method, **params)
        except NotFound as exc:
            placed = unserved_run(self.client(), exc)
            if placed is None:
                raise
            raise placed from None

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()


def version_mismatch(info: dict[str, Any]) -> str | None:
    """What to tell the user when the daemon speaks another protocol version, else None."""
    from simpleaide import client as client_module

    ours = client_module.API_VERSION
    theirs = info.get("apiVersion")
    if theirs == ours:
        return None
    daemon = f"simpleaided {info.get('version', '?')}"
    spoken = f"protocol version {theirs}" if theirs is not None else "an older protocol"
    if isinstance(theirs, int) and theirs > ours:
        advice = "upgrade simpleaide"
    elif info.get("startMode") in ("socket-activation", "systemd"):
        # systemd would start the same old daemon again: its unit must point here first.
        advice = (
            "point systemd at this installation: simpleaide daemon install-units --force, "
            "then systemctl --user daemon-reload && systemctl --user restart simpleaided"
        )
    else:
        advice = "restart the daemon to run the installed version: simpleaide daemon stop"
    return f"{daemon} speaks {spoken}, this simpleaide speaks version {ours}; {advice}"


def warn_on_version_mismatch(client: Client) -> None:
    """Say on stderr if the daemon speaks another protocol version (one ``daemon.info``)."""
    try:
        info = client.call("daemon.info")
    except ClientError:
        return  # too old or new to answer, or gone: the command itself will say so
    problem = version_mismatch(info) if isinstance(info, dict) else None
    if problem:
        import sys

        print(f"simpleaide: warning: {escape(problem)}", file=sys.stderr)


# -- parameters in the user's words ----------------------------------------------------------

# The daemon's parameters that the CLI sends from what a user typed, by the words a user knows
# them by: the options that give one (said when the command line holds one of them), else
# what it is. Any other ``fooBar`` is ``--foo-bar`` when typed so, else ``foo bar``.
_PARAM_WORDS: dict[str, tuple[tuple[str, ...], str]] = {
    "runId": ((), "the run id"),
    "prefix": ((), "the run id"),
    "errorMessage": (("--message", "-m"), "the message"),
    "title": (("--title",), "the title"),
    "name": (("--name",), "NAME"),
    "step": ((), "STEP"),
    "workspace": (("--workspace",), "the folder"),
    "path": ((), "PATH"),
    "cwd": (("--cwd",), "the folder"),
    "ownerPid": (("--owner-pid",), "the owner's pid"),
    "olderThanDays": (("--older-than",), "the age"),
    "value": ((), "the value"),
    "sql": ((), "the SQL"),
    "params": (("--param",), "the parameters"),
    "filters": (("--where",), "the filters"),
    "argv": ((), "COMMAND"),
    "env": (("--env",), "the environment"),
    "table": ((), "TABLE"),
    "key": ((), "KEY"),
}
# The parameters that are paths (of folders): the daemon keeps them as UTF-8 text.
_PATH_PARAMS = frozenset({"workspace", "path", "cwd"})


def _typed(options: tuple[str, ...]) -> str | None:
    """The first of ``options`` (its long form) if the command line holds any of them."""
    for arg in (command_line or [])[1:]:
        if arg == "--":
            break
        for option in options:
            short = not option.startswith("--")
            if arg == option or arg.startswith(f"{option}=") or (short and arg[:2] == option):
                return options[0]
    return None


def param_label(name: str) -> str:
    """A parameter of the daemon's as the user knows it: ``errorMessage`` is ``--message``
    when typed, ``name`` is ``NAME`` (or ``--name``), ``runId`` is ``the run id``."""
    kebab = "--" + _words(name).replace(" ", "-")
    options, words = _PARAM_WORDS.get(name, ((kebab,), _words(name)))
    return _typed(options) or words


def _param_noun(name: str) -> str:
    """``param_label`` for a sentence: ``the title (--title)``, ``NAME``."""
    options, words = _PARAM_WORDS.get(name, ((), ""))
    typed = _typed(options)
    if typed and words and not words.isupper():
        return f"{words} ({typed})"
    return param_label(name)


def _bad_text(value: Any) -> str | None:
    """The first text in ``value`` (a string, or a list or object holding some, keys too)
    that is not UTF-8: an argument's bytes that are not become lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        value = [*value, *value.values()]
    if isinstance(value, list | tuple):
        for item in value:
            found = _bad_text(item)
            if found is not None:
                return found
    return None


def _as_bytes_shown(text: str) -> tuple[str, str]:
    """``text`` as typed, its bytes that are not UTF-8 shown as ``\\xe9`` (cut after 80
    characters), and the first of them."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte became: shown as \udXXX
        raw = text.encode("utf-8", "backslashreplace")
    shown = raw.decode("utf-8", "backslashreplace")
    first = next((c for c in text if "\ud800" <= c <= "\udfff"), "")
    byte = f"byte \\x{ord(first) - 0xDC00:02x}" if "\udc80" <= first <= "\udcff" else ""
    if not byte:
        byte = f"\\u{ord(first):04x}" if first else "not UTF-8"
    return (shown if len(shown) <= 80 else f"{shown[:79]}…"), byte


def refuse_non_utf8(params: dict[str, Any]) -> None:
    """A ``CliError`` naming the first parameter that holds text that is not UTF-8 (an
    argument of such bytes, a folder so named): the protocol carries UTF-8 only, and the
    daemon could say only that the message does not parse."""
    for name, value in params.items():
        bad = _bad_text(value)
        if bad is None:
            continue
        shown, byte = _as_bytes_shown(bad)
        if name in _PATH_PARAMS:
            raise CliError(
                f"the folder's name {shown} is not UTF-8 ({byte}); the daemon keeps paths "
                "as UTF-8 text: rename the folder, or use one with a UTF-8 name"
            )
        raise CliError(f"{_param_noun(name)} is not UTF-8 text ({byte}): {shown}")


# How the JSON-RPC library words a refusal of the parameters: it says nothing by itself.
_GENERIC_INVALID_PARAMS = "invalid params"


def describe(exc: RpcError) -> str:
    """One line for an error from the daemon, in the CLI's words: refused parameters by
    their reasons (not the protocol's "Invalid params") and by the options that gave them
    (``--message``, not ``errorMessage``), and a refusal that forcing would overcome
    (``data.hint == "force"``) with the command to do so.

    A line break becomes a space; other spaces are kept (a path quoted in it keeps its
    own)."""
    message = exc.message.strip()
    data = exc.data
    if isinstance(exc, InvalidParams):
        if message.lower().startswith(_GENERIC_INVALID_PARAMS):
            rest = message[len(_GENERIC_INVALID_PARAMS) :].lstrip(" :")
            message = rest or _reasons(data) or message
        else:
            message = _relabelled(message, data)
    if isinstance(data, dict) and data.get("hint") == "force":
        message = _forcible(message, data)
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _relabelled(message: str, data: Any) -> str:
    """The daemon's ``field: reason`` sentences of ``message`` (one per item of
    ``data.errors``) with each parameter named as the user knows it (``param_label``)."""
    errors = data.get("errors") if isinstance(data, dict) else None
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, dict):
            continue
        field, msg = item.get("field"), item.get("msg")
        if not (isinstance(field, str) and field and isinstance(msg, str)):
            continue
        if not msg.startswith(f"{field}: ") or msg not in message:
            continue
        top = field.split(".", 1)[0].split("[", 1)[0]
        label = param_label(top) + field[len(top) :]
        if label != field:
            message = message.replace(msg, f"{label}: {msg[len(field) + 2 :]}", 1)
    return message


# How the CLI says doing anyway what ``--force`` does, by the status the refusal names.
_ANYWAY = {"deleted": "delete it anyway", "completed": "close them and complete it anyway"}


def _forcible(message: str, data: dict[str, Any]) -> str:
    """A refusal that ``--force`` overcomes, said once, with the command that does it. The
    daemon's ``WHAT is STATUS; cannot move to REQUESTED (ADVICE, or force...)`` becomes
    ``WHAT is STATUS: ADVICE, or delete it anyway with: simpleaide ... --force``."""
    head, cannot, rest = message.partition("; cannot move to ")
    start = rest.find(" (")
    advice, or_force = "", ""
    if cannot and start >= 0 and rest.endswith(")"):
        advice, or_force, _ = rest[start + 2 : -1].rpartition(", or force")
    if not (or_force and advice):
        return f"{message}; to do it anyway: {forced_command()}"
    anyway = _ANYWAY.get(str(data.get("requested")), "do it anyway")
    return f"{head}: {advice}, or {anyway} with: {forced_command()}"


def _reasons(data: Any) -> str:
    """The reasons in an invalid-params error's ``data``: a sentence, or a list of
    ``{loc, msg, type}`` (pydantic's, alone or as ``errors``), of which the first three are
    said."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        data = data.get("errors")
    if not isinstance(data, list) or not data:
        return ""
    reasons = []
    for item in data[:3]:
        if not isinstance(item, dict):
            reasons.append(str(item))
            continue
        label = " ".join(_words(part) for part in item.get("loc") or [])
        msg = str(item.get("msg", ""))
        if msg.startswith("Value error, ") or not label:
            # The daemon's own sentence, which names what it refuses.
            reasons.append(msg.removeprefix("Value error, "))
        elif msg == "Field required":
            reasons.append(f"{label} is required")
        else:
            for library in ("Input should", "String should", "Value should", "List should"):
                if msg.startswith(library):
                    msg = f"should{msg[len(library) :]}"
                    break
            reasons.append(f"{label} {msg}" if msg.startswith("should") else f"{label}: {msg}")
    more = f" (and {len(data) - 3} more)" if len(data) > 3 else ""
    return "; ".join(reasons) + more


def _words(part: Any) -> str:
    """A parameter's name in words (``runId``: ``run id``); a list index counts from 1."""
    if isinstance(part, int):
        return f"#{part + 1}"
    return "".join(f" {c.lower()}" if c.isupper() else c for c in str(part)).strip()


def forced_command() -> str:
    """The command as typed, with ``--force`` added (before a ``--``, if there is one)."""
    import shlex

    argv = list(command_line) if command_line is not None else ["simpleaide", "..."]
    if "--force" not in argv:
        argv.insert(argv.index("--") if "--" in argv else len(argv), "--force")
    return " ".join(shlex.quote(arg) for arg in argv)


def unserved_run(client: Client, exc: NotFound) -> NotFound | None:
    """For a run the daemon does not know (``data.runId``, no ``data.workspace``): the error
    naming the workspace around the current folder if the run lies there and the daemon does
    not serve it (never served, or served by another daemon), else ``None``."""
    import shlex

    data = exc.data if isinstance(exc.data, dict) else {}
    run_id = data.get("runId")
    if not isinstance(run_id, str) or data.get("workspace") or "/" in run_id:
        return None
    workspace = paths.find_workspace()
    if workspace is None:
        return None
    if not os.path.isdir(os.path.join(workspace, paths.WORKSPACE_MARKER, "runs", run_id)):
        return None
    try:
        served = client.call("workspaces.list")
    except ClientError:
        return None
    canonical = os.path.realpath(workspace)
    if any(isinstance(w, dict) and w.get("path") == canonical for w in served or []):
        return None  # served: the run is missing for another reason (the daemon's words)
    return NotFound(
        exc.code,
        f"run {run_id} is in workspace {canonical}, which the daemon does not serve; "
        f"serve it with: simpleaide workspaces add {shlex.quote(canonical)}",
        {**data, "workspace": canonical},
    )


def workspace_call(session: Session, method: str, workspace: str | None, **params: Any) -> Any:
    """Call a method scoped to ``workspace``; a folder holding ``.simpleaide/`` that the
    daemon has never served is served first (as ``runs.create`` does). One the user stopped
    serving (``workspaces rm``, or dropped from the config file: the daemon's error says so
    in ``data.removed``) stays unserved: the daemon's error says how to add it again."""
    try:
        return session.call(method, workspace=workspace, **params)
    except NotFound as exc:
        marker = os.path.join(workspace or "", paths.WORKSPACE_MARKER)
        data = exc.data if isinstance(exc.data, dict) else {}
        if workspace is None or data.get("removed") or not os.path.isdir(marker):
            raise
        session.call("workspaces.add", path=workspace)
        return session.call(method, workspace=workspace, **params)
