"""The vault file: secrets encrypted at rest, with the key derived from a passphrase.

One JSON file, 0600, replaced atomically on every change::

    {"format": 1,
     "kdf": {"name": "argon2id", "salt": "<b64>", "memoryKib": 131072, "iterations": 3,
             "lanes": 4},
     "cipher": "aes-256-gcm",
     "check": {"nonce": "<b64>", "data": "<b64>"},
     "secrets": {"nonce": "<b64>", "data": "<b64>"}}

The key is Argon2id(passphrase, salt, parameters); both sealed blobs are AES-256-GCM under
it with a fresh random nonce each, and authenticate the header (format, KDF parameters,
cipher) as associated data, so no field can be altered unnoticed. ``check`` seals a known
text: when it does not open, the passphrase is wrong; when it opens but ``secrets`` does
not, the file was damaged or tampered with. Nothing ever decrypts into garbage.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simpleaided.domain.errors import NotFound, VaultDamaged, WrongPassphrase
from simpleaided.store import safefs

FORMAT = 1
CIPHER = "aes-256-gcm"
MAX_VAULT_BYTES = 64 << 20
_CHECK_TEXT = b"simpleaide vault v1"
_NONCE_BYTES = 12
_SALT_BYTES = 16
# Argon2id parameters a vault file may name (the configuration is held to the same).
MIN_KDF_MEMORY_KIB = 8 * 1024
MAX_KDF_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_KDF_ITERATIONS = 10
MAX_KDF_LANES = 64


@dataclass(frozen=True)
class KdfParams:
    """Argon2id's cost: memory in KiB, passes, and parallel lanes."""

    memory_kib: int = 131072
    iterations: int = 3
    lanes: int = 4


@dataclass(frozen=True)
class Sealed:
    """An opened vault file: its header (what the key was derived with) and its secrets."""

    header: dict[str, Any]
    secrets: dict[str, str]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text, validate=True)


def new_header(params: KdfParams) -> dict[str, Any]:
    """The header of a vault keyed anew: a fresh salt and ``params``."""
    return {
        "format": FORMAT,
        "kdf": {
            "name": "argon2id",
            "salt": _b64(os.urandom(_SALT_BYTES)),
            "memoryKib": params.memory_kib,
            "iterations": params.iterations,
            "lanes": params.lanes,
        },
        "cipher": CIPHER,
    }


# ``cryptography`` is imported where it is used: ~9 MB of memory that a daemon whose vault
# is never opened should not pay.


def derive_key(passphrase: str, header: dict[str, Any]) -> bytes:
    """The 256-bit key of ``passphrase`` under ``header``'s KDF (CPU and memory heavy: run it
    in a worker thread)."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = header["kdf"]
    return Argon2id(
        salt=_unb64(kdf["salt"]),
        length=32,
        iterations=kdf["iterations"],
        lanes=kdf["lanes"],
        memory_cost=kdf["memoryKib"],
    ).derive(passphrase.encode())


def _aad(header: dict[str, Any], part: str) -> bytes:
    # The part's name too, so the two blobs cannot be swapped for each other.
    return orjson.dumps(header, option=orjson.OPT_SORT_KEYS) + b"\0" + part.encode()


def _seal_part(key: bytes, header: dict[str, Any], part: str, plain: bytes) -> dict[str, str]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    data = AESGCM(key).encrypt(nonce, plain, _aad(header, part))
    return {"nonce": _b64(nonce), "data": _b64(data)}


def _open_part(key: bytes, header: dict[str, Any], part: str, sealed: Any) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not isinstance(sealed, dict):
        raise ValueError(f"'{part}' is missing")
    return AESGCM(key).decrypt(
        _unb64(sealed.get("nonce")), _unb64(sealed.get("data")), _aad(header, part)
    )


def seal(key: bytes, header: dict[str, Any], values: dict[str, str]) -> bytes:
    """The whole file for ``values`` under ``key`` (fresh nonces)."""
    doc = {
        **header,
        "check": _seal_part(key, header, "check", _CHECK_TEXT),
        "secrets": _seal_part(key, header, "secrets", orjson.dumps(values)),
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def _within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_header(data: bytes) -> dict[str, Any]:
    """The header of a vault file, checked enough to derive a key from it safely."""
    try:
        doc = orjson.loads(data)
        kdf = doc["kdf"]
        header = {
            "format": doc["format"],
            "kdf": {
                "name": kdf["name"],
                "salt": kdf["salt"],
                "memoryKib": kdf["memoryKib"],
                "iterations": kdf["iterations"],
                "lanes": kdf["lanes"],
            },
            "cipher": doc["cipher"],
        }
        ok = (
            header["format"] == FORMAT
            and kdf["name"] == "argon2id"
            and header["cipher"] == CIPHER
            and len(_unb64(kdf["salt"])) >= _SALT_BYTES
            # Bounds, so a doctored header cannot make unlocking take minutes or all memory.
            and _within(kdf["memoryKib"], MIN_KDF_MEMORY_KIB, MAX_KDF_MEMORY_KIB)
            and _within(kdf["iterations"], 1, MAX_KDF_ITERATIONS)
            and _within(kdf["lanes"], 1, MAX_KDF_LANES)
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultDamaged(f"the vault file is damaged: {type(exc).__name__}") from None
    if not ok:
        raise VaultDamaged("the vault file is damaged: unknown format or KDF parameters")
    return header


def open_sealed(key: bytes, data: bytes) -> Sealed:
    """Decrypt a vault file with ``key``; ``WrongPassphrase`` if the key is not the file's,
    ``VaultDamaged`` if the key is right but the contents fail authentication."""
    from cryptography.exceptions import InvalidTag

    header = parse_header(data)
    doc = orjson.loads(data)
    try:
        check = _open_part(key, header, "check", doc.get("check"))
    except (InvalidTag, ValueError):
        raise WrongPassphrase("wrong passphrase") from None
    if check != _CHECK_TEXT:
        raise VaultDamaged("the vault file is damaged: bad key check")
    try:
        values = orjson.loads(_open_part(key, header, "secrets", doc.get("secrets")))
    except (InvalidTag, ValueError):
        raise VaultDamaged(
            "the vault file is damaged or was tampered with: its secrets fail authentication"
        ) from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise VaultDamaged("the vault file is damaged: secrets are not name → text")
    return Sealed(header, values)


class VaultFile:
    """Reads and replaces the vault file, never following a symlink, always 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _parent(self, *, create: bool) -> int:
        folder = self.path.parent
        if create:
            folder.mkdir(mode=safefs.DIR_MODE, parents=True, exist_ok=True)
        grand = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        with safefs.opened(grand):
            return safefs.open_dir(grand, folder.name, str(folder), create=create)

    def exists(self) -> bool:
        """Whether there is a vault file (a vault was initialized)."""
        try:
            with safefs.opened(self._parent(create=False)) as fd:
                return safefs.lstat_at(fd, self.path.name) is not None
        except (FileNotFoundError, NotFound):
            return False

    def read(self) -> bytes:
        """The file's bytes; ``NotFound`` if there is none."""
        try:
            parent = self._parent(create=False)
        except FileNotFoundError:
            raise NotFound("no vault: run 'simpleaide vault init' first") from None
        with safefs.opened(parent) as fd:
            return safefs.read_file(fd, self.path.name, "the vault file", MAX_VAULT_BYTES)

    def write(self, data: bytes) -> None:
        """Replace the file with ``data`` atomically and durably."""
        with safefs.opened(self._parent(create=True)) as fd:
            safefs.atomic_write(fd, self.path.name, data)
