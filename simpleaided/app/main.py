"""The ``simpleaided`` command: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from simpleaided import __version__
from simpleaided.app.config import ConfigError, load_config
from simpleaided.app.daemon import Daemon
from simpleaided.transports.unix_socket import SocketInUse

DESCRIPTION = """\
Run simpleaided, the per-user SimpleAide daemon, in the foreground. It owns the run store of
every served workspace and answers JSON-RPC 2.0 on a Unix socket. It needs no config file;
logs go to stderr. Stop it with Ctrl-C or SIGTERM (requests in progress finish first).
"""

EPILOG = """\
environment: SIMPLEAIDE_SOCKET, SIMPLEAIDE_CONFIG, SIMPLEAIDE_ENV (DEV|PROD),
SIMPLEAIDE_LOG_LEVEL, SIMPLEAIDE_STATE_DIR, SIMPLEAIDE_MAX_MESSAGE_BYTES, SIMPLEAIDE_VAULT_FILE,
SIMPLEAIDE_HTTP ([HOST:]PORT: enables the HTTP shim).
Flags override the environment, which overrides the config file.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 cannot start, 2 bad usage or config)."""
    args = _parser().parse_args(argv)
    overrides = {
        "env": args.env,
        "daemon.socket": args.socket,
        "daemon.log_level": args.log_level,
        "http.listen": args.http,
    }
    try:
        config = load_config(
            config_file=args.config, overrides=overrides, extra_workspaces=args.workspace
        )
    except ConfigError as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.daemon.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: one line per LLM backend per probe, URLs included.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        daemon = Daemon(config)
    except ConfigError as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 2
    try:
        anyio.run(daemon.run)
    except SocketInUse as exc:
        print(f"simpleaided: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"simpleaided: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
