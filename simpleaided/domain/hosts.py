"""Host names and addresses that mean this machine: the HTTP shim listens on one of them
unless told otherwise, and accepts them in a ``Host`` header."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""The loopback interface's usual names, as a ``Host`` header spells them."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address) names the loopback interface."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
