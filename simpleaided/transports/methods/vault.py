"""``vault.*``: set up, unlock and lock the vault; store, read and delete its secrets.

Passphrases and values arrive in params: pydantic's errors never echo input (see rpc), and
nothing here logs params.
"""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.services.vault import VaultService
from simpleaided.transports.methods.base import MethodList
from simpleaided.transports.rpc import Method


def vault_methods(vault: VaultService) -> list[Method]:
    """Every ``vault.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("vault.status", api.NoParams, api.VaultStatus, "Locked or not, and when it locks.")
    def vault_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return vault.status()

    @add("vault.init", api.VaultInitParams, api.VaultStatus, "Create the vault (then unlocked).")
    async def vault_init(p: api.VaultInitParams, conn: Any) -> dict[str, Any]:
        await vault.init(p.passphrase)
        return vault.status()

    @add("vault.unlock", api.VaultUnlockParams, api.VaultStatus, "Unlock with the passphrase.")
    async def vault_unlock(p: api.VaultUnlockParams, conn: Any) -> dict[str, Any]:
        await vault.unlock(p.passphrase, p.ttl_seconds)
        return vault.status()

    @add("vault.lock", api.NoParams, api.VaultStatus, "Lock now: forget the key.")
    def vault_lock(p: api.NoParams, conn: Any) -> dict[str, Any]:
        vault.lock()
        return vault.status()

    @add(
        "vault.changePassphrase",
        api.VaultPassphraseParams,
        api.VaultStatus,
        "Re-key the vault under a new passphrase.",
    )
    async def vault_passwd(p: api.VaultPassphraseParams, conn: Any) -> dict[str, Any]:
        await vault.change_passphrase(p.passphrase, p.new_passphrase)
        return vault.status()

    @add("vault.set", api.SetSecretParams, api.SecretStored, "Store a secret (unlocked only).")
    async def vault_set(p: api.SetSecretParams, conn: Any) -> dict[str, Any]:
        return {"name": p.name, "replaced": await vault.set(p.name, p.value)}

    @add("vault.get", api.SecretRef, api.SecretValue, "Read a secret (unlocked only).")
    def vault_get(p: api.SecretRef, conn: Any) -> dict[str, Any]:
        return {"name": p.name, "value": vault.get(p.name)}

    @add("vault.list", api.NoParams, api.SecretNames, "The secrets' names (unlocked only).")
    def vault_list(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return {"names": vault.names()}

    @add("vault.delete", api.SecretRef, api.SecretDeleted, "Delete a secret (unlocked only).")
    async def vault_delete(p: api.SecretRef, conn: Any) -> dict[str, Any]:
        await vault.delete(p.name)
        return {"name": p.name, "deleted": True}

    return methods
