"""Secrets in settings and in text: the ``vault:NAME`` reference a setting holds instead of
a secret, the resolver that turns one into the secret, and the one policy that keeps secrets
out of any text the daemon shows or logs (``scrub``).

Pure: the vault service resolves, this only names and masks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

VAULT_REF = "vault:"
"""The prefix of a setting that names a secret instead of holding it: ``vault:NAME``."""

MASK = "***"
"""What a secret reads as once scrubbed."""

# A secret this short is masked only where it stands alone: replacing every "a" inside other
# words would garble the message without hiding anything a reader could not guess.
_SHORT = 3

# ``scheme://user:password@host``: the password part of a URL's userinfo.
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^@\s]*@")
# ``password=…`` in a key/value conninfo string or a URL query.
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


class SecretResolver(Protocol):
    """Turns a ``vault:NAME`` reference into the secret; raises ``VaultLocked`` while the
    vault is locked and ``NotFound`` when it holds no such secret."""

    def __call__(self, reference: str, /) -> str: ...


def vault_name(value: str) -> str | None:
    """The secret's name if ``value`` is a vault reference (``""`` for a bare ``vault:``),
    else ``None``: the value is then the setting itself."""
    return value[len(VAULT_REF) :] if value.startswith(VAULT_REF) else None


def is_vault_ref(value: str) -> bool:
    """Whether ``value`` is a well-formed vault reference: ``vault:`` and a name."""
    return bool(vault_name(value))


def url_secrets(url: str) -> set[str]:
    """The passwords a URL holds, as written and decoded: its userinfo password and any
    ``password=`` query value (libpq takes both, and its errors may quote either)."""
    found: set[str] = set()
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if name == "password":
                found.add(value)
        found |= {m.group(1) for m in re.finditer(r"[?&]password=([^&#]*)", url) if m.group(1)}
    return {secret for secret in found if secret}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret masked, and any URL userinfo password or
    ``password=`` value too (a server may echo a secret the daemon never knew it sent).

    Secrets are masked longest first, so one that contains another is masked whole and no
    part of it is left behind; one shorter than three characters only where it stands alone.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _SHORT:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    return _KV_PASSWORD.sub(rf"\1{MASK}", text)
