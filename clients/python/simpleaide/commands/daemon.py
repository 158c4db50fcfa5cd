"""``simpleaide daemon``: start, stop and inspect the daemon, install its systemd units."""

from __future__ import annotations

import os
import signal
import time

from simpleaide import paths, tables, units
from simpleaide.client import Client, DaemonUnreachable
from simpleaide.commands import reply
from simpleaide.safetext import escape
from simpleaide.session import EXIT_OK, CliError, Session, version_mismatch

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``daemon`` commands; ``install-units`` and ``uninstall-units`` (in
    ``simpleaide.units``) never talk to the daemon, so they take no connection options."""
    daemon = tree.group("daemon", "start, stop and inspect the daemon")
    daemon.add(
        "start",
        "start the daemon in the background; return once it answers",
        daemon_start,
        description="Start simpleaided in the background (its output goes to\n"
        "$XDG_STATE_HOME/simpleaide/daemon.log) and return once it answers. If one is\n"
        "already answering, say so and succeed.",
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
        "status",
        "the daemon's version, pid, socket, uptime, runs, warnings",
        daemon_status,
        description="Show the daemon's version, pid, socket, uptime, counts and warnings;\n"
        "exit 3 when none answers (a daemon is never started for this).",
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


def daemon_start(session: Session, args: Args) -> int:
    """``simpleaide daemon start``: returns once the daemon answers."""
    from simpleaide.spawn import start_daemon

    with Client(session.socket_path, timeout=session.timeout) as client:
        if client.ping():
            pid = client.peer_pid()
            shown = f" (pid {pid})" if pid else ""
            print(escape(f"simpleaided is already running on {session.socket_path}{shown}"))
            return EXIT_OK
    pid = start_daemon(session.socket_path)
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
    path = session.socket_path
    with Client(path, timeout=session.timeout) as client:
        try:
            info = client.call("daemon.info")
        except DaemonUnreachable:
            print(escape(f"simpleaided is not running on {path}"))
            return EXIT_OK
        pid = client.peer_pid() or int(info["pid"])
    under_systemd = info.get("startMode") in ("socket-activation", "systemd")
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
            print(f"simpleaided stopped (pid {pid})")
            if under_systemd:
                print(
                    "it was started by systemd, which starts it again on the next connection; "
                    "to stop it for good: systemctl --user stop simpleaided.socket "
                    "simpleaided.service"
                )
            return EXIT_OK
        if time.monotonic() >= deadline:
            raise CliError(f"simpleaided (pid {pid}) did not stop within {STOP_TIMEOUT:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


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


def _show_info(info: dict[str, Any]) -> None:
    warnings = info.get("warnings") or []
    mismatch = version_mismatch(info)
    protocol = f"version {info.get('apiVersion', '?')}"
    print(
        tables.fields(
            [
                ("simpleaided", f"{info.get('version', '?')}, running (pid {info.get('pid')})"),
                ("started by", START_MODES.get(info.get("startMode") or "", "unknown")),
                ("uptime", _uptime(int(info.get("uptimeMs") or 0))),
                ("protocol", f"{protocol} (mismatch: see below)" if mismatch else protocol),
                ("socket", str(info.get("socket"))),
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
    "cli": "simpleaide, on demand (log: $XDG_STATE_HOME/simpleaide/daemon.log)",
    "foreground": "hand, in the foreground",
}
