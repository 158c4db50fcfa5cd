"""The ``vault.*`` contract: passphrases, secrets and the vault's state."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from simpleaided.domain.api.base import Params
from simpleaided.domain.api.fields import SECRET, UNQUOTED
from simpleaided.domain.vocabulary import VaultState

SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SecretName = Annotated[
    str,
    Field(
        title="secret name",
        description="1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit",
        pattern=SECRET_NAME_PATTERN,
        examples=["api-key"],
    ),
    UNQUOTED,
]
# Length bounds only: a passphrase may hold any character. Never echoed back in errors.
Passphrase = Annotated[str, Field(min_length=1, max_length=1024, json_schema_extra=SECRET)]
NewPassphrase = Annotated[str, Field(min_length=8, max_length=1024, json_schema_extra=SECRET)]
MAX_SECRET_CHARS = 65536


class VaultInitParams(Params):
    passphrase: NewPassphrase


class VaultUnlockParams(Params):
    passphrase: Passphrase
    # This unlock's idle time (instead of the configured one), still capped by the maximum.
    ttl_seconds: float | None = Field(None, gt=0, le=30 * 86400)


class VaultPassphraseParams(Params):
    passphrase: Passphrase
    new_passphrase: NewPassphrase


class SecretRef(Params):
    name: SecretName


class SetSecretParams(SecretRef):
    value: Annotated[str, Field(max_length=MAX_SECRET_CHARS, json_schema_extra=SECRET)]


class VaultStatus(BaseModel):
    """``vault.status``: the state, when it locks, and how it is set up."""

    state: VaultState
    autoLockRemainingMs: int | None
    secrets: int | None  # how many, while unlocked
    idleLockSeconds: float | None  # this unlock's idle time (``None``: never)
    maxUnlockSeconds: float | None
    retryAfterMs: int  # how long the next unlock attempt waits (after failed ones)
    file: str


class SecretValue(BaseModel):
    name: str
    value: str


class SecretNames(BaseModel):
    names: list[str]


class SecretStored(BaseModel):
    name: str
    replaced: bool


class SecretDeleted(BaseModel):
    name: str
    deleted: bool
