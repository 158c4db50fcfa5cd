"""The ``simpleaided`` command: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import stat
import sys
from pathlib import Path

import anyio

from simpleaided import __version__
from simpleaided.app import systemd
from simpleaided.app.config import Config, ConfigError, load_config
from simpleaided.app.daemon import Daemon
from simpleaided.app.usage import SuggestingParser
from simpleaided.domain.api import LogDestination, StartMode
from simpleaided.services.terminals.spawn import set_child_fd_limit
from simpleaided.transports.server import warn_if_short_of_descriptors
from simpleaided.transports.unix_socket import SocketClaim, SocketInUse

DESCRIPTION = """\
Run simpleaided, the per-user SimpleAide daemon, in the foreground. It owns the run store of
every served workspace and answers JSON-RPC 2.0 on a Unix socket. It needs no config file;
logs go to stderr (to the journal, with priorities, under systemd). Stop it with Ctrl-C or
SIGTERM (requests in progress finish first); SIGHUP reloads the configuration.

Under systemd (simpleaide daemon install-units) it takes the socket systemd passes
(socket activation) and reports readiness, status and watchdog pings with sd_notify.
"""

EPILOG = """\
environment: SIMPLEAIDE_SOCKET, SIMPLEAIDE_CONFIG, SIMPLEAIDE_ENV (DEV|PROD),
SIMPLEAIDE_LOG_LEVEL, SIMPLEAIDE_STATE_DIR, SIMPLEAIDE_MAX_MESSAGE_BYTES,
SIMPLEAIDE_MAX_CONNECTIONS, SIMPLEAIDE_VAULT_FILE, SIMPLEAIDE_HTTP ([HOST:]PORT: enables the
HTTP shim).
Flags override the environment, which overrides the config file.
"""


STARTED_BY: tuple[StartMode, ...] = ("cli", "daemon-start", "daemon-restart")


def _parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(  # "did you mean" for a misspelt option or value
        prog="simpleaided",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--socket", metavar="PATH", help="Unix socket to serve on")
    parser.add_argument("--config", metavar="FILE", help="TOML config file to read")
    parser.add_argument("--env", choices=["DEV", "PROD"], type=str.upper, help="profile")
    parser.add_argument(
        "--workspace",
        metavar="PATH",
        action="append",
        help="serve this workspace too (repeatable)",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], type=str.lower
    )
    parser.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        help="serve the HTTP shim (GET /api/status, the web header) on HOST:PORT "
        "(default host 127.0.0.1; loopback only unless http.allow_remote)",
    )
    parser.add_argument("--version", action="version", version=f"simpleaided {__version__}")
    # Set by `simpleaide` when it starts a daemon, for `simpleaide daemon status`: on demand
    # (cli), or by `simpleaide daemon start` or `restart`.
    parser.add_argument("--started-by", choices=STARTED_BY, help=argparse.SUPPRESS)
    return parser


class _JournalFormatter(logging.Formatter):
    """Lines for journald: its own timestamps, and the level as a ``<N>`` syslog priority
    (``journalctl -p warning`` then works)."""

    PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 2)
        text = f"{record.name}: {super().format(record)}"
        # journald makes an entry of each line: a traceback's lines keep the priority too.
        return "\n".join(f"<{priority}>{line}" for line in text.split("\n"))


def _stderr_is_journal() -> bool:
    """Whether stderr goes to journald (``JOURNAL_STREAM`` names its device and inode)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (
        # ASCII digits only: ``isdigit`` alone takes superscripts, which ``int`` refuses.
        device.isascii()
        and device.isdigit()
        and inode.isascii()
        and inode.isdigit()
        and (st.st_dev, st.st_ino)
        == (
            int(device),
            int(inode),
        )
    )


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if _stderr_is_journal():
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # httpx logs every request at INFO: one line per LLM backend per probe, URLs included.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_destination() -> LogDestination:
    """Where this process's log goes (its stderr), for ``daemon.info``: the journal, a file
    (the one ``simpleaide`` appends to: its path, if it still has one), nowhere
    (``/dev/null``), or a terminal or pipe (by hand)."""
    if _stderr_is_journal():
        return LogDestination(to="journal", path=None)
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):  # closed
        return LogDestination(to="none", path=None)
    if stat.S_ISREG(st.st_mode):
        return LogDestination(to="file", path=_path_of(st))
    if stat.S_ISCHR(st.st_mode):
        try:
            null = os.stat(os.devnull)
        except OSError:
            null = None
        if null is not None and null.st_rdev == st.st_rdev:
            return LogDestination(to="none", path=None)
    return LogDestination(to="stderr", path=None)


def _path_of(st: os.stat_result) -> str | None:
    """The path of the file open as stderr, if that path still names that file (it may
    have been deleted or replaced since: a log rotated)."""
    try:
        path = os.readlink(f"/proc/self/fd/{sys.stderr.fileno()}")
        named = os.stat(path)
    except (OSError, ValueError):
        return None
    if (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
        return None
    return path


def _start_mode(args: argparse.Namespace, activated: bool, notifier: systemd.Notifier) -> StartMode:
    if activated:
        return "socket-activation"
    if args.started_by:  # first: the CLI may itself run inside a service
        started_by: StartMode = args.started_by
        return started_by
    if "INVOCATION_ID" in os.environ or notifier.enabled:
        return "systemd"
    return "foreground"


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns ``(before, now)``.

    Each client connection takes a descriptor, and systemd's soft default of 1,024 (kept
    low for programs that still use ``select``) would be reached by about a thousand idle
    clients. The hard limit is what the administrator allows (the unit's ``LimitNOFILE=``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a hard limit above what the kernel allows (nr_open)
        return soft, soft
    return soft, hard


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 cannot start, 2 bad usage or config)."""
    args = _parser().parse_args(argv)
    try:
        passed = systemd.take_passed_sockets()
        activated = systemd.rpc_socket(passed) if passed else None
    except systemd.ActivationError as exc:
        print(f"simpleaided: socket activation: {exc}", file=sys.stderr)
        return 2
    notifier = systemd.Notifier()
    overrides = {
        "env": args.env,
        "daemon.socket": args.socket,
        "daemon.log_level": args.log_level,
        "http.listen": args.http,
    }
    if activated is not None:
        # The socket systemd passed is the one served, whatever the configuration says.
        name = activated.getsockname()
        if not isinstance(name, str) or not name.startswith("/"):
            print(
                "simpleaided: socket activation: the passed socket must be bound to a path "
                "(ListenStream=/path/daemon.sock)",
                file=sys.stderr,
            )
            return 2
        overrides["daemon.socket"] = name

    cwd = Path.cwd()  # relative paths in flags and variables: from here, on reloads too

    def load() -> Config:
        return load_config(
            config_file=args.config, overrides=overrides, extra_workspaces=args.workspace, cwd=cwd
        )

    try:
        config = load()
    except ConfigError as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config.daemon.log_level)
    before, now = raise_fd_limit()
    log = logging.getLogger(__name__)
    if now != before:
        log.debug("file descriptor limit raised from %d to %d", before, now)
        set_child_fd_limit(before)  # what the programs in terminals get, as if started by hand
    warn_if_short_of_descriptors(config.limits.max_connections)
    try:
        daemon = Daemon(
            config,
            notifier=notifier,
            start_mode=_start_mode(args, activated is not None, notifier),
            load_config=load,
            log_destination=log_destination(),
        )
    except ConfigError as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 2
    try:
        claim = None
        if activated is not None:
            # A daemon this one replaces may still be finishing its requests.
            wait = config.daemon.shutdown_grace_seconds + 5
            claim = SocketClaim.adopt(activated, config.socket_path, wait_seconds=wait)
        anyio.run(lambda: daemon.run(claim=claim))
    except SocketInUse as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # its words and the path, not "[Errno 2] ..."
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"simpleaided: cannot start: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
