"""The secrets vault on the real daemon: encryption at rest, locking, auto-lock, slow-down."""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.domain.status import StatusDocument
from simpleaided.store.vaultfile import KdfParams, derive_key, new_header
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient, RpcFailed

PASS = "correct horse battery staple"
SECRET = "s3cr3t-value-0f-the-api-key"
# Small Argon2id costs keep the suite fast; the defaults are measured by the benchmarks.
FAST_KDF = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
DELAY = 0.2  # the first failed-unlock delay in these tests


def vault_settings(short_tmp: Path, **more: Any) -> dict[str, Any]:
    return {
        "vault.file": str(short_tmp / "data" / "vault.json"),
        "vault.failed_unlock_delay_seconds": DELAY,
        **FAST_KDF,
        **more,
    }


@pytest.fixture
async def vault_daemon(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> AsyncIterator[Daemon]:
    async with running_daemon(
        socket_path, isolated_env / "state", **vault_settings(short_tmp)
    ) as started:
        yield started


@pytest.fixture
async def vclient(vault_daemon: Daemon, socket_path: Path) -> AsyncIterator[RpcClient]:
    async with await RpcClient.connect(socket_path) as c:
        yield c


async def rpc_error(client: RpcClient, method: str, **params: Any) -> RpcFailed:
    with pytest.raises(RpcFailed) as caught:
        await client.call(method, **params)
    return caught.value


async def test_a_vault_keeps_secrets_encrypted_and_only_unlocked_reads_them(
    vclient: RpcClient, short_tmp: Path
) -> None:
    assert (await vclient.call("vault.status"))["state"] == "uninitialized"
    assert (await rpc_error(vclient, "vault.get", name="openai")).code == -32020

    status = await vclient.call("vault.init", passphrase=PASS)
    assert status["state"] == "unlocked" and status["secrets"] == 0
    assert await vclient.call("vault.set", name="openai", value=SECRET) == {
        "name": "openai",
        "replaced": False,
    }
    await vclient.call("vault.set", name="pg.prod", value="pw")
    assert (await vclient.call("vault.get", name="openai"))["value"] == SECRET
    assert (await vclient.call("vault.list"))["names"] == ["openai", "pg.prod"]

    path = short_tmp / "data" / "vault.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    assert SECRET.encode() not in raw and b"openai" not in raw and b"pg.prod" not in raw

    assert (await vclient.call("vault.lock"))["state"] == "locked"
    for method, params in [("vault.get", {"name": "openai"}), ("vault.list", {})]:
        assert (await rpc_error(vclient, method, **params)).code == -32020
    error = await rpc_error(vclient, "vault.set", name="x", value="y")
    assert error.code == -32020
    assert path.read_bytes() == raw  # a refused write changes nothing

    await vclient.call("vault.unlock", passphrase=PASS)
    assert (await vclient.call("vault.get", name="openai"))["value"] == SECRET
    await vclient.call("vault.delete", name="openai")
    assert (await rpc_error(vclient, "vault.get", name="openai")).code == -32001
    assert (await rpc_error(vclient, "vault.delete", name="openai")).code == -32001


PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3


def dumpable() -> int:
    """This process's ``PR_GET_DUMPABLE``: the in-process daemon sets it for the process."""
    return int(ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
async def test_once_a_passphrase_arrives_the_process_memory_is_closed_to_other_processes(
    vclient: RpcClient,
) -> None:
    """Not dumpable: no same-uid ptrace, no ``/proc/<pid>/mem`` read, no core file with the
    key in it. (The autouse fixture in conftest makes the test process dumpable again.)"""
    assert dumpable() == 1
    await vclient.call("vault.status")
    assert dumpable() == 1  # nothing secret yet: the daemon stays debuggable
    await vclient.call("vault.init", passphrase=PASS)
    assert dumpable() == 0
    await vclient.call("vault.lock")
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    await rpc_error(vclient, "vault.unlock", passphrase="wrong passphrase")
    assert dumpable() == 0  # a passphrase was in memory, right or wrong
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    await vclient.call("vault.unlock", passphrase=PASS)
    assert dumpable() == 0
    await vclient.call("vault.lock")
    assert dumpable() == 0  # a locked vault's key may linger in freed memory


async def test_every_write_uses_a_fresh_nonce(vclient: RpcClient, short_tmp: Path) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    path = short_tmp / "data" / "vault.json"
    await vclient.call("vault.set", name="a", value="same")
    first = json.loads(path.read_bytes())
    await vclient.call("vault.set", name="a", value="same")
    second = json.loads(path.read_bytes())
    assert first["kdf"] == second["kdf"]  # same key...
    for part in ("check", "secrets"):  # ...new nonces, so new ciphertexts
        assert first[part]["nonce"] != second[part]["nonce"]
        assert first[part]["data"] != second[part]["data"]


async def test_a_wrong_passphrase_and_a_tampered_file_are_told_apart(
    vclient: RpcClient, short_tmp: Path
) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.set", name="a", value=SECRET)
    await vclient.call("vault.lock")
    path = short_tmp / "data" / "vault.json"
    good = path.read_bytes()

    error = await rpc_error(vclient, "vault.unlock", passphrase="not the passphrase")
    assert error.code == -32021 and "not the passphrase" not in error.message
    assert (await vclient.call("vault.status"))["state"] == "locked"

    doc = json.loads(good)
    data = bytearray(base64.b64decode(doc["secrets"]["data"]))
    data[5] ^= 1
    doc["secrets"]["data"] = base64.b64encode(bytes(data)).decode()
    path.write_text(json.dumps(doc))
    await anyio.sleep(DELAY)  # the wrong attempt above slowed this one down
    error = await rpc_error(vclient, "vault.unlock", passphrase=PASS)
    assert error.code == -32022 and "tampered" in error.message
    assert (await vclient.call("vault.status"))["state"] == "locked"

    doc = json.loads(good)
    doc["kdf"]["iterations"] += 1  # the header is authenticated too
    path.write_text(json.dumps(doc))
    assert (await rpc_error(vclient, "vault.unlock", passphrase=PASS)).code == -32021

    path.write_bytes(good)
    await anyio.sleep(2 * DELAY)
    await vclient.call("vault.unlock", passphrase=PASS)
    assert (await vclient.call("vault.get", name="a"))["value"] == SECRET


async def test_failed_unlocks_slow_down_and_a_success_resets_the_delay(
    vclient: RpcClient,
) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.lock")
    waits = []
    for _ in range(3):
        started = time.monotonic()
        error = await rpc_error(vclient, "vault.unlock", passphrase="wrong passphrase")
        waits.append(time.monotonic() - started)
        assert error.code == -32021
    assert error.data["retryAfterMs"] == 4 * DELAY * 1000  # 1, 2, 4 times the first delay
    # Each attempt waits out the delay the failure before it set.
    assert waits[1] >= DELAY and waits[2] >= 2 * DELAY
    assert (await vclient.call("vault.status"))["retryAfterMs"] > 0
    started = time.monotonic()
    await vclient.call("vault.unlock", passphrase=PASS)
    assert time.monotonic() - started >= 3 * DELAY  # even the right one waits
    await vclient.call("vault.lock")
    error = await rpc_error(vclient, "vault.unlock", passphrase="wrong again")
    assert error.data["retryAfterMs"] == DELAY * 1000  # back to the first delay


async def test_parallel_guessing_is_serialized(vclient: RpcClient, socket_path: Path) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.lock")
    codes: list[int] = []

    async def guess(n: int) -> None:
        async with await RpcClient.connect(socket_path) as c:
            codes.append((await rpc_error(c, "vault.unlock", passphrase=f"guess {n}")).code)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(guess, n)
    assert codes == [-32021] * 4
    # Four connections do not guess four times faster: the delays add up (1 + 2 + 4).
    assert time.monotonic() - started >= 7 * DELAY


async def test_the_vault_locks_itself_when_idle_and_subscribers_see_it(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    settings = vault_settings(short_tmp, **{"vault.idle_lock_seconds": 0.4})
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("status.subscribe")
        await client.call("vault.init", passphrase=PASS)
        with anyio.fail_after(3):
            while True:  # the unlocked state, as the subscriber saw it
                note = await client.notification("status.changed")
                vault = StatusDocument.model_validate(note["status"]).vault
                if vault.state == "unlocked":
                    break
        assert vault.autoLockRemainingMs is not None and 0 < vault.autoLockRemainingMs <= 400
        started = time.monotonic()
        with anyio.fail_after(3):
            while True:
                note = await client.notification("status.changed")
                if note["status"]["vault"]["state"] == "locked":
                    break
        assert time.monotonic() - started < 1.0  # when it happens, not on a later poll
        assert note["status"]["vault"]["autoLockRemainingMs"] is None
        assert (await rpc_error(client, "vault.get", name="a")).code == -32020


async def test_use_postpones_the_idle_lock_but_not_the_maximum(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    # Used every 0.1 s against an idle time of 0.8 s: a stall of 0.7 s would be needed to lock
    # it early, on a loaded machine.
    settings = vault_settings(
        short_tmp, **{"vault.idle_lock_seconds": 0.8, "vault.max_unlock_seconds": 1.6}
    )
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("vault.init", passphrase=PASS)
        await client.call("vault.set", name="a", value="b")
        started = time.monotonic()
        with anyio.fail_after(3):
            while True:
                try:
                    await client.call("vault.get", name="a")  # use, every 0.1 s
                except RpcFailed as exc:
                    assert exc.code == -32020
                    break
                await anyio.sleep(0.1)
        # Kept open past the idle time by use, then locked by the maximum.
        assert 1.5 <= time.monotonic() - started < 2.5


async def test_an_unlock_can_ask_for_a_shorter_idle_time(vclient: RpcClient) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.lock")
    status = await vclient.call("vault.unlock", passphrase=PASS, ttlSeconds=60)
    assert status["idleLockSeconds"] == 60
    assert 59_000 < status["autoLockRemainingMs"] <= 60_000


async def test_changing_the_passphrase_rekeys_and_keeps_the_secrets(
    vclient: RpcClient, short_tmp: Path
) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.set", name="a", value=SECRET)
    salt = json.loads((short_tmp / "data" / "vault.json").read_bytes())["kdf"]["salt"]
    error = await rpc_error(
        vclient, "vault.changePassphrase", passphrase="wrong one", newPassphrase="new passphrase"
    )
    assert error.code == -32021
    await anyio.sleep(DELAY)
    status = await vclient.call(
        "vault.changePassphrase", passphrase=PASS, newPassphrase="new passphrase"
    )
    assert status["state"] == "unlocked"
    assert json.loads((short_tmp / "data" / "vault.json").read_bytes())["kdf"]["salt"] != salt
    await vclient.call("vault.lock")
    assert (await rpc_error(vclient, "vault.unlock", passphrase=PASS)).code == -32021
    await anyio.sleep(DELAY)
    await vclient.call("vault.unlock", passphrase="new passphrase")
    assert (await vclient.call("vault.get", name="a"))["value"] == SECRET


async def test_bad_vault_requests_are_refused_and_change_nothing(
    vclient: RpcClient, short_tmp: Path
) -> None:
    path = short_tmp / "data" / "vault.json"
    error = await rpc_error(vclient, "vault.init", passphrase="pw12345")  # under 8
    assert error.code == -32602 and "pw12345" not in json.dumps(error.data)
    assert not path.exists()
    await vclient.call("vault.init", passphrase=PASS)
    assert (await rpc_error(vclient, "vault.init", passphrase=PASS)).code == -32011
    before = path.read_bytes()
    for name in ["../x", "a/b", "", ".hidden", "x" * 200, "nul\x00"]:
        assert (await rpc_error(vclient, "vault.set", name=name, value="v")).code == -32602
    error = await rpc_error(vclient, "vault.set", name="big", value="v" * 70_000)
    assert error.code == -32602 and "vvvv" not in json.dumps(error.data)
    assert (await rpc_error(vclient, "vault.unlock", passphrase="")).code == -32602
    assert path.read_bytes() == before
    assert await vclient.call("daemon.ping") == "pong"


async def test_a_name_not_found_is_never_said_back(
    vclient: RpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    # An API key pasted where a name goes is a valid name: it must not come back in the error.
    caplog.set_level(logging.DEBUG)
    await vclient.call("vault.init", passphrase=PASS)
    pasted = "sk-live-" + SECRET + "0123456789abcdef"
    for method in ("vault.get", "vault.delete"):
        error = await rpc_error(vclient, method, name=pasted)
        assert error.code == -32001
        assert error.message == "no secret with that name (see simpleaide vault ls)"
        assert pasted not in json.dumps([error.message, error.data])
    assert pasted not in caplog.text


async def test_secrets_never_reach_logs_status_or_errors(
    vclient: RpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.set", name="k", value=SECRET)
    await vclient.call("vault.get", name="k")
    await vclient.call("vault.lock")
    errors = [
        await rpc_error(vclient, "vault.unlock", passphrase="wrong " + SECRET),
        await rpc_error(vclient, "vault.set", name="k", value=SECRET),
        await rpc_error(vclient, "vault.set", name="k/" + SECRET, value=SECRET),
        await rpc_error(vclient, "vault.init", passphrase=SECRET),
        await rpc_error(
            vclient, "vault.changePassphrase", passphrase=SECRET, newPassphrase=SECRET[:3]
        ),
    ]
    said = json.dumps([(e.code, e.message, e.data) for e in errors])
    document = json.dumps(await vclient.call("status.get"))
    info = json.dumps(await vclient.call("daemon.info"))
    for text in (caplog.text, document, info, said):
        assert SECRET not in text and PASS not in text
    assert "vault locked (asked to)" in caplog.text  # the log was captured


def test_the_default_kdf_costs_a_noticeable_fraction_of_a_second() -> None:
    # Measured, not asserted as a speed: the default parameters must not be the toy ones.
    header = new_header(KdfParams())
    assert header["kdf"]["memoryKib"] >= 64 * 1024 and header["kdf"]["iterations"] >= 3
    assert len(derive_key("p", header)) == 32


async def unlock_again(client: RpcClient) -> None:
    await client.call("vault.unlock", passphrase=PASS)


async def test_an_unlock_never_undoes_a_write_made_while_it_derived_the_key(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    # A real key derivation cost (~0.2 s), so the write lands while the unlock derives.
    settings = {**vault_settings(short_tmp), "vault.kdf_memory_kib": 131072, "vault.kdf_lanes": 4}
    settings["vault.kdf_iterations"] = 3
    async with (
        running_daemon(socket_path, isolated_env / "state", **settings),
        await RpcClient.connect(socket_path) as client,
        await RpcClient.connect(socket_path) as other,
    ):
        await client.call("vault.init", passphrase=PASS)
        await client.call("vault.set", name="a", value="1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(unlock_again, client)  # restarts its timers
            await anyio.sleep(0.05)
            await other.call("vault.set", name="b", value="2")
            await other.call("vault.delete", name="a")
        assert (await client.call("vault.list"))["names"] == ["b"]
        await client.call("vault.lock")
        await client.call("vault.unlock", passphrase=PASS)
        assert (await client.call("vault.list"))["names"] == ["b"]


async def test_a_vault_that_would_be_too_big_to_read_back_is_refused(
    vclient: RpcClient, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simpleaided.services import vault as vault_service

    monkeypatch.setattr(vault_service, "MAX_VAULT_BYTES", 4096)
    await vclient.call("vault.init", passphrase=PASS)
    path = short_tmp / "data" / "vault.json"
    for n in range(100):
        try:
            await vclient.call("vault.set", name=f"s{n}", value="x" * 500)
        except RpcFailed as exc:
            assert exc.code == -32040 and "limit" in exc.message
            break
    else:
        pytest.fail("the size limit never applied")
    kept = path.read_bytes()
    assert len(kept) <= 4096
    await vclient.call("vault.lock")
    await vclient.call("vault.unlock", passphrase=PASS)  # what was stored still opens
    assert len((await vclient.call("vault.list"))["names"]) == n


@pytest.mark.parametrize(
    ("field", "value"),
    [("memoryKib", 2 * 1024 * 1024), ("iterations", 1000), ("iterations", True), ("lanes", 0)],
)
async def test_a_header_asking_for_absurd_costs_is_refused_at_once(
    vclient: RpcClient, short_tmp: Path, field: str, value: object
) -> None:
    await vclient.call("vault.init", passphrase=PASS)
    await vclient.call("vault.lock")
    path = short_tmp / "data" / "vault.json"
    doc = json.loads(path.read_bytes())
    doc["kdf"][field] = value
    path.write_text(json.dumps(doc))
    with anyio.fail_after(2):  # refused before any key derivation
        error = await rpc_error(vclient, "vault.unlock", passphrase=PASS)
    assert error.code == -32022


async def test_an_unusable_vault_folder_does_not_stop_the_daemon(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    real = short_tmp / "elsewhere"
    real.mkdir(mode=0o700)
    (short_tmp / "data").symlink_to(real)
    async with (
        running_daemon(socket_path, isolated_env / "state", **vault_settings(short_tmp)),
        await RpcClient.connect(socket_path) as client,
    ):
        info = await client.call("daemon.info")
        assert any("the vault cannot be used" in w for w in info["warnings"])
        error = await rpc_error(client, "vault.init", passphrase=PASS)
        assert error.code == -32020 and "symlink" in error.message
        assert (await client.call("status.get"))["vault"]["state"] == "locked"
        assert await client.call("daemon.ping") == "pong"
    assert list(real.iterdir()) == []
