"""``simpleaide daemon``: start, stop, restart, reload and inspect the daemon, read its log,
install its systemd units."""

from __future__ import annotations

import os
import signal
import sys
import time

from simpleaide import paths, tables, units
from simpleaide.client import Client, DaemonUnreachable, RpcError
from simpleaide.commands import reply
from simpleaide.safetext import escape, json_text
from simpleaide.session import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    CliError,
    Session,
    version_mismatch,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any, BinaryIO

    from simpleaide.commands import Commands
    from simpleaide.session import Args

UNIT = "simpleaided"  # the service install-units writes (simpleaided.service)
JOURNAL_COMMAND = f"journalctl --user -u {UNIT}"
SYSTEMD_MODES = ("socket-activation", "systemd")
DEFAULT_LOG_LINES = 50
FOLLOW_SECONDS = 0.25  # how often `logs -f` looks for new lines
_METHOD_NOT_FOUND = -32601

START_HELP = """\
Start simpleaided in the background and return once it answers. Its output is appended
to $XDG_STATE_HOME/simpleaide/daemon.log (~/.local/state/simpleaide/daemon.log; see it
with: simpleaide daemon logs). If one is already answering, say so and succeed."""

RESTART_HELP = f"""\
Stop the daemon, wait until it has gone, start a new one and return once it answers
(to run a newly installed version, or apply settings a reload cannot: daemon.socket,
http, watch...). One started by systemd is restarted by systemd:
systemctl --user restart {UNIT}. One started by hand (simpleaided in a terminal) is left
alone: restart it there. With no daemon running, one is started."""

RELOAD_HELP = """\
Ask the daemon to read its configuration again and apply it, as SIGHUP does, and say
whether it did. An invalid configuration is refused (exit 1, saying why) and the running
one stays. Settings only a restart changes are kept as they are (see the daemon's log)."""

LOGS_HELP = f"""\
Print the last lines of the daemon's log (-n, default {DEFAULT_LOG_LINES}); with -f, keep
printing new lines as they come, until Ctrl-C. A daemon started by simpleaide logs to
$XDG_STATE_HOME/simpleaide/daemon.log; with no daemon answering, that file is shown (the
last one simpleaide started). One started by systemd logs to the journal:
{JOURNAL_COMMAND} [-f] [-n N] is run. One started by hand logs to its stderr
(its terminal): there is nothing to show here."""


def register(tree: Commands) -> None:
    """The ``daemon`` commands; ``install-units`` and ``uninstall-units`` (in
    ``simpleaide.units``) never talk to the daemon, so they take no connection options."""
    daemon = tree.group("daemon", "start, stop, restart, reload and inspect the daemon")
    daemon.add(
        "start",
        "start the daemon in the background; return once it answers",
        daemon_start,
        description=START_HELP,
        json_output=False,
    )
    daemon.add(
        "stop",
        "stop the daemon (SIGTERM) and wait until it has gone",
        daemon_stop,
        description="Ask the daemon to stop (SIGTERM; requests in progress finish first) and\n"
        "wait until it has gone. Succeeds, saying so, if none was running.",
        json_output=False,
    )
    daemon.add(
        "restart",
        "stop the daemon, start a new one; return once it answers",
        daemon_restart,
        description=RESTART_HELP,
        json_output=False,
    )
    daemon.add(
        "reload",
        "re-read the configuration (as SIGHUP does); say whether it was applied",
        daemon_reload,
        description=RELOAD_HELP,
    )
    daemon.add(
        "status",
        "the daemon's version, pid, how it was started, log, HTTP address, warnings",
        daemon_status,
        description="Show the daemon's version, pid, who started it, uptime, socket, log,\n"
        "the HTTP side's address, counts and warnings; exit 3 when none answers (a daemon\n"
        "is never started for this).",
    )
    logs = daemon.add(
        "logs",
        "the daemon's log: the last lines, or follow it (-f)",
        daemon_logs,
        description=LOGS_HELP,
        json_output=False,
    )
    logs.add_argument(
        "-n",
        "--lines",
        type=_line_count,
        default=DEFAULT_LOG_LINES,
        metavar="N",
        help=f"how many of the last lines to print (default {DEFAULT_LOG_LINES})",
    )
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C"
    )
    unit_dir_help = "the user unit folder (default: $XDG_CONFIG_HOME/systemd/user)"
    install = daemon.add(
        "install-units",
        "install the systemd user units (socket activation)",
        units.install_units,
        description=units.INSTALL_HELP,
        connection=False,
    )
    install.add_argument("--dir", metavar="DIR", help=unit_dir_help)
    install.add_argument(
        "--force", action="store_true", help="replace unit files that exist and differ"
    )
    uninstall = daemon.add(
        "uninstall-units",
        "remove the systemd user units that install-units wrote",
        units.uninstall_units,
        description=units.UNINSTALL_HELP,
        connection=False,
    )
    uninstall.add_argument("--dir", metavar="DIR", help=unit_dir_help)


def _line_count(text: str) -> int:
    import argparse

    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return int(text)


def _info(session: Session) -> dict[str, Any] | None:
    """``daemon.info`` of the daemon on the session's socket; ``None`` if none answers (one
    is never started for this)."""
    with Client(session.socket_path, timeout=session.timeout) as client:
        try:
            info: dict[str, Any] = client.call("daemon.info")
        except DaemonUnreachable:
            return None
        pid = client.peer_pid()
    if pid:
        info["pid"] = pid  # the process at the other end of the socket: what a signal reaches
    return info


# -- start, stop, restart ---------------------------------------------------------------------


def daemon_start(session: Session, args: Args) -> int:
    """``simpleaide daemon start``: returns once the daemon answers."""
    from simpleaide.spawn import start_daemon

    with Client(session.socket_path, timeout=session.timeout) as client:
        if client.ping():
            pid = client.peer_pid()
            shown = f" (pid {pid})" if pid else ""
            print(escape(f"simpleaided is already running on {session.socket_path}{shown}"))
            return EXIT_OK
    pid = start_daemon(session.socket_path, started_by="daemon-start")
    log = paths.daemon_log_path()
    print(escape(f"simpleaided started on {session.socket_path} (pid {pid}); log: {log}"))
    return EXIT_OK


def _process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself hold ") ".
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


STOP_TIMEOUT = 10.0


def daemon_stop(session: Session, args: Args) -> int:
    """``simpleaide daemon stop``: SIGTERM, then wait until it no longer answers."""
    info = _info(session)
    if info is None:
        print(escape(f"simpleaided is not running on {session.socket_path}"))
        return EXIT_OK
    pid = int(info["pid"])
    under_systemd = info.get("startMode") in SYSTEMD_MODES
    _stop_and_wait(session.socket_path, pid, under_systemd=under_systemd)
    print(f"simpleaided stopped (pid {pid})")
    if under_systemd:
        print(
            "it was started by systemd, which starts it again on the next connection; "
            "to stop it for good: systemctl --user stop simpleaided.socket "
            "simpleaided.service"
        )
    return EXIT_OK


def _stop_and_wait(path: str, pid: int, *, under_systemd: bool) -> None:
    """SIGTERM to ``pid``, then wait until it has gone (and, unless systemd would start
    another at the next connection, until nothing answers on ``path``)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise CliError(f"cannot stop simpleaided (pid {pid}): {exc.strerror}") from None
    deadline = time.monotonic() + STOP_TIMEOUT
    delay = 0.005
    while True:
        # Under socket activation a connection would start the daemon again: only the
        # process is watched then.
        answering = False
        if not under_systemd:
            with Client(path, timeout=1.0) as probe:
                answering = probe.ping()
        if not answering and _process_gone(pid):
            return
        if time.monotonic() >= deadline:
            raise CliError(f"simpleaided (pid {pid}) did not stop within {STOP_TIMEOUT:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def daemon_restart(session: Session, args: Args) -> int:
    """``simpleaide daemon restart``: returns once the new daemon answers."""
    from simpleaide.spawn import start_daemon

    path = session.socket_path
    info = _info(session)
    log = paths.daemon_log_path()
    if info is None:
        pid = start_daemon(path, started_by="daemon-restart")
        print(escape(f"simpleaided was not running; started on {path} (pid {pid}); log: {log}"))
        return EXIT_OK
    old = int(info["pid"])
    mode = info.get("startMode")
    if mode in SYSTEMD_MODES:
        return _restart_by_systemd(session, old)
    if mode == "foreground":
        # The commands as they must be typed: with the socket, unless it is the one they
        # would pick without it.
        flag = ""
        if path != paths.socket_path():
            import shlex

            flag = f" --socket {shlex.quote(path)}"
        raise CliError(
            f"simpleaided (pid {old}) was started by hand: restart it where it runs, or "
            f"replace it with one simpleaide starts: simpleaide daemon stop{flag} && "
            f"simpleaide daemon start{flag}"
        )
    _stop_and_wait(path, old, under_systemd=False)
    pid = start_daemon(path, started_by="daemon-restart")
    print(escape(f"simpleaided restarted on {path} (pid {pid}, was {old}); log: {log}"))
    return EXIT_OK


def _restart_by_systemd(session: Session, old: int) -> int:
    """``systemctl --user restart simpleaided``, then wait until the daemon answers."""
    import shutil
    import subprocess

    command = ["systemctl", "--user", "restart", UNIT]
    shown = " ".join(command)
    program = shutil.which("systemctl")
    if program is None:
        raise CliError(
            f"simpleaided (pid {old}) was started by systemd, and systemctl is not found "
            f"here: run {shown}"
        )
    done = subprocess.run(
        [program, *command[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if done.returncode != 0:
        said = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line]
        why = f": {said[-1]}" if said else ""
        raise CliError(f"{shown} failed (exit {done.returncode}){why}")
    from simpleaide.spawn import START_TIMEOUT

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        info = _info(session)  # under socket activation, this connection starts it anyway
        if info is not None:
            print(f"simpleaided restarted by systemd ({shown}): pid {info['pid']}, was {old}")
            return EXIT_OK
        if time.monotonic() >= deadline:
            raise CliError(
                f"{shown} succeeded, but no daemon answers on {session.socket_path} after "
                f"{START_TIMEOUT:g} s; see: {JOURNAL_COMMAND}",
                EXIT_UNREACHABLE,
            )
        time.sleep(0.1)


# -- reload -----------------------------------------------------------------------------------


def daemon_reload(session: Session, args: Args) -> int:
    """``simpleaide daemon reload``: exit 1 when the configuration was refused."""
    path = session.socket_path
    with Client(path, timeout=session.timeout) as client:
        try:
            result: dict[str, Any] = client.call("daemon.reload")
        except DaemonUnreachable:
            raise DaemonUnreachable(
                f"simpleaided is not running (no daemon answers on {path})"
            ) from None
        except RpcError as exc:
            if exc.code != _METHOD_NOT_FOUND:
                raise
            return _reload_by_signal(client)
    if args.json:
        print(json_text(result))
    elif result.get("reloaded"):
        source = result.get("configFile") or "no file: the defaults, environment and flags"
        print(escape(f"configuration reloaded ({source})"))
    if not result.get("reloaded"):
        if args.json:
            return EXIT_ERROR
        error = result.get("error") or "see the daemon's log"
        raise CliError(f"configuration not reloaded, the running one stays: {error}")
    return EXIT_OK


def _reload_by_signal(client: Client) -> int:
    """An older daemon, without ``daemon.reload``: SIGHUP, whose outcome it does not tell."""
    pid = client.peer_pid()
    if not pid:
        raise CliError("this simpleaided cannot be asked to reload: send it SIGHUP")
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise CliError(f"cannot signal simpleaided (pid {pid}): {exc.strerror}") from None
    print(
        f"sent SIGHUP to simpleaided (pid {pid}); this version does not say how its reload "
        "went: see simpleaide daemon status"
    )
    return EXIT_OK


# -- status -----------------------------------------------------------------------------------


def _uptime(ms: int) -> str:
    seconds = ms // 1000
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def daemon_status(session: Session, args: Args) -> int:
    """``simpleaide daemon status``: exit 3 when no daemon answers."""
    with Client(session.socket_path, timeout=session.timeout) as client:
        try:
            info = client.call("daemon.info")
        except DaemonUnreachable:
            raise DaemonUnreachable(
                f"simpleaided is not running (no daemon answers on {session.socket_path})"
            ) from None
    return reply(args, info, _show_info)


def log_destination(info: dict[str, Any]) -> dict[str, Any]:
    """Where the daemon's log goes (``daemon.info``'s ``log``); guessed from how it was
    started for a daemon too old to say."""
    told = info.get("log")
    if isinstance(told, dict) and told.get("to"):
        return told
    mode = info.get("startMode")
    if mode in SYSTEMD_MODES:
        return {"to": "journal", "path": None}
    if mode == "cli":
        return {"to": "file", "path": paths.daemon_log_path()}
    return {"to": "unknown", "path": None}


def _log_words(info: dict[str, Any]) -> str:
    log = log_destination(info)
    to = log.get("to")
    if to == "file":
        return str(log.get("path") or "a file no longer at its path (deleted or moved)")
    if to == "journal":
        return f"the journal: {JOURNAL_COMMAND}"
    if to == "stderr":
        return "its stderr (the terminal or program that started it)"
    if to == "none":
        return "nowhere (its stderr is /dev/null)"
    return "unknown"


def _show_info(info: dict[str, Any]) -> None:
    warnings = info.get("warnings") or []
    mismatch = version_mismatch(info)
    protocol = f"version {info.get('apiVersion', '?')}"
    mode = info.get("startMode") or ""
    print(
        tables.fields(
            [
                ("simpleaided", f"{info.get('version', '?')}, running (pid {info.get('pid')})"),
                ("started by", START_MODES.get(mode, f"unknown ({mode})" if mode else "unknown")),
                ("uptime", _uptime(int(info.get("uptimeMs") or 0))),
                ("protocol", f"{protocol} (mismatch: see below)" if mismatch else protocol),
                ("socket", str(info.get("socket"))),
                ("log", _log_words(info)),
                ("http", info.get("httpUrl") or "off"),
                ("env", str(info.get("env"))),
                ("config", info.get("configFile") or "none (defaults)"),
                ("workspaces", str(info.get("workspaces"))),
                ("runs", str(info.get("runs"))),
                ("warnings", str(len(warnings)) if warnings else "none"),
            ]
        )
    )
    if mismatch:
        print(f"  ! {escape(mismatch)}")
    for warning in warnings:
        print(f"  ! {escape(warning)}")


# How ``daemon.info``'s ``startMode`` reads in ``simpleaide daemon status``.
START_MODES = {
    "socket-activation": "systemd, on the first connection (socket activation)",
    "systemd": "systemd (a service)",
    "cli": "simpleaide, on demand (a command found no daemon running)",
    "daemon-start": "simpleaide daemon start",
    "daemon-restart": "simpleaide daemon restart",
    "foreground": "hand (simpleaided run directly)",
}


# -- logs -------------------------------------------------------------------------------------


def daemon_logs(session: Session, args: Args) -> int:
    """``simpleaide daemon logs [-n N] [-f]``: Ctrl-C ends ``-f`` with exit 0."""
    info = _info(session)
    if info is None:
        path = paths.daemon_log_path()
        if not os.path.exists(path):
            raise CliError(
                f"no daemon answers on {session.socket_path}, and there is no log at {path} "
                "(where a daemon started by simpleaide writes)",
                EXIT_UNREACHABLE,
            )
        print(
            escape(
                f"simpleaide: no daemon answers on {session.socket_path}; the log of the "
                f"last one simpleaide started, {path}:"
            ),
            file=sys.stderr,
        )
        return _tail(path, args.lines, follow=args.follow)
    log = log_destination(info)
    pid = info.get("pid")
    to = log.get("to")
    if to == "file" and log.get("path"):
        return _tail(str(log["path"]), args.lines, follow=args.follow)
    if to == "journal":
        return _journal(args.lines, follow=args.follow)
    if to == "file":
        raise CliError(f"simpleaided (pid {pid}) logs to a file that was deleted or moved")
    if to == "stderr":
        raise CliError(
            f"simpleaided (pid {pid}) was started by hand and logs to its stderr: its lines "
            "are in the terminal (or wherever its output goes) that started it"
        )
    if to == "none":
        raise CliError(f"simpleaided (pid {pid}) keeps no log: its stderr is /dev/null")
    raise CliError(f"simpleaided (pid {pid}) does not say where it logs")


def _journal(lines: int, *, follow: bool) -> int:
    """``journalctl --user -u simpleaided``, its output as it is (journalctl escapes what it
    shows itself)."""
    import shutil
    import subprocess

    command = [*JOURNAL_COMMAND.split(), "--no-pager", "-n", str(lines)]
    if follow:
        command.append("-f")
    program = shutil.which("journalctl")
    if program is None:
        raise CliError("simpleaided logs to the journal, and journalctl is not found here")
    child = subprocess.Popen([program, *command[1:]], stdin=subprocess.DEVNULL)
    try:
        return child.wait()
    except KeyboardInterrupt:  # journalctl had the same SIGINT: it ends too
        child.wait()
        _interrupted(line_ended=True)
        return EXIT_OK


def _tail(path: str, lines: int, *, follow: bool) -> int:
    """The last ``lines`` lines of the file at ``path``; then, if ``follow``, what is
    appended to it, until Ctrl-C (exit 0). A log truncated is read again from its start,
    one replaced (rotated) from the new file's start."""
    import codecs

    try:
        f: BinaryIO = open(path, "rb")  # kept open while following; closed below
    except OSError as exc:
        raise CliError(f"cannot read the log {path}: {exc.strerror}") from None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    line_ended = True  # what was shown ends with a whole line (or nothing was shown)

    def write(data: bytes, *, final: bool = False) -> None:
        nonlocal line_ended
        text = decoder.decode(data, final=final)
        if text:
            sys.stdout.write(escape(text, keep="\n\t"))
            sys.stdout.flush()
            line_ended = text.endswith("\n")

    try:
        write(_last_lines(f, lines))
        if not follow:
            write(b"", final=True)
            return EXIT_OK
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                write(chunk)
                continue
            replacement = _replacement(f, path)
            if replacement is not None:
                write(f.read())  # what the old file gained meanwhile
                f.close()
                f = replacement
                continue
            time.sleep(FOLLOW_SECONDS)
    except KeyboardInterrupt:
        _interrupted(line_ended=line_ended)
        return EXIT_OK
    finally:
        f.close()


def _interrupted(*, line_ended: bool) -> None:
    """After Ctrl-C on a terminal: wipe the ``^C`` it echoed on the fresh line below the
    log (as ``watch`` does); after a line cut short, start a new line instead, keeping it."""
    if sys.stdout.isatty():
        sys.stdout.write("\r\x1b[K" if line_ended else "\n")
        sys.stdout.flush()


def _last_lines(f: BinaryIO, count: int) -> bytes:
    """The last ``count`` lines of ``f`` (a last line without its line break counts), read
    from the end; ``f`` is left at its end."""
    end = f.seek(0, os.SEEK_END)
    if count == 0:
        return b""
    data = b""
    start = end
    while start > 0 and data.count(b"\n") <= count:
        step = min(1 << 16, start)
        start -= step
        f.seek(start)
        data = f.read(step) + data
    f.seek(end)
    ended = data.endswith(b"\n")
    body = data[:-1] if ended else data
    if not body and not ended:
        return b""
    kept = body.split(b"\n")[-count:]
    return b"\n".join(kept) + (b"\n" if ended else b"")


def _replacement(f: BinaryIO, path: str) -> BinaryIO | None:
    """The file now at ``path``, opened, if the log ``f`` was replaced (rotated) by it;
    else ``None``, with ``f`` rewound if it was truncated."""
    held = os.fstat(f.fileno())
    if held.st_size < f.tell():
        f.seek(0)
        return None
    try:
        now = os.stat(path)
    except OSError:
        return None  # deleted: a new one may come
    if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
        return None
    try:
        return open(path, "rb")  # the caller closes it
    except OSError:
        return None
