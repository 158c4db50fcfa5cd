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
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from simpleaided.domain.database import POSTGRES_SCHEMES, conninfo_params, misread

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
    """The passwords a PostgreSQL URL (or ``key=value`` conninfo) or another URL holds, as
    written and decoded: what libpq's own parser reads as ``password`` and ``sslpassword``
    (``#`` or ``?`` inside a password included, as the connection will read it), the password
    meant by a URL libpq misreads (an unescaped ``/`` or ``@`` in it) or cannot read (a space
    or a stray ``%`` too) with its pieces, and
    what a generic URL reading finds (its userinfo password, a ``password=`` query value),
    since libpq's errors may quote any of them: more masked is no harm, one missed is."""
    found: set[str] = set()
    postgres = url.lower().startswith(POSTGRES_SCHEMES)  # a scheme is any case (RFC 3986)
    params = conninfo_params(url) if "://" not in url or postgres else None
    for name in ("password", "sslpassword"):
        value = (params or {}).get(name)
        if value:
            found |= {value, quote(value, safe="")}
    unread = params is None and postgres
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if unread or (params is not None and misread(params)) or ":" in userinfo:
        # Whatever a reader takes the URL for, the text meant as its password is masked.
        found |= _meant_password(url)
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found |= {parts.password, unquote(parts.password)}
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if name in ("password", "sslpassword"):
                found.add(value)
        found |= {
            m.group(1) for m in re.finditer(r"[?&](?:ssl)?password=([^&#]*)", url) if m.group(1)
        }
    return {secret for secret in found if secret}


def _meant_password(url: str) -> set[str]:
    """The password a URL libpq misread or could not read was meant to hold (all between the
    user's ``:`` and the last ``@``), and its pieces that libpq may quote as a host, port,
    database, query parameter or in its parse errors."""
    rest = url.partition("://")[2]
    userinfo, at, _ = rest.rpartition("@")
    meant = userinfo.partition(":")[2] if at else ""
    pieces = re.split(r"[/@?#:=&%\s]", meant)
    return {meant, *(piece for piece in pieces if len(piece) >= _SHORT)}


def scrub(text: str, secrets: Iterable[str], *, ignore_case: bool = False) -> str:
    """``text`` with every known secret masked, and any URL userinfo password or
    ``password=`` value too (a server may echo a secret the daemon never knew it sent);
    ``ignore_case`` masks a secret however it is cased (in a value that was upper-cased).

    Secrets are masked longest first, so one that contains another is masked whole and no
    part of it is left behind; one shorter than three characters only where it stands alone.
    """
    flags = re.IGNORECASE if ignore_case else 0
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _SHORT and not ignore_case:
            text = text.replace(secret, MASK)
        elif len(secret) >= _SHORT:
            text = re.sub(re.escape(secret), MASK, text, flags=flags)
        else:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text, flags=flags)
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    return _KV_PASSWORD.sub(rf"\1{MASK}", text)
