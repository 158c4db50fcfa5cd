"""Terminals: programs on real PTYs hosted by the daemon, attachable by any number of clients
(README: Terminals on the wire). ``service`` holds them all, ``terminal`` one of them,
``scrollback`` what it printed, ``spawn`` how its program starts and is signalled."""

from simpleaided.services.terminals.service import TerminalService, TerminalSettings
from simpleaided.services.terminals.terminal import Limits

__all__ = ["Limits", "TerminalService", "TerminalSettings"]
