"""Which folders can be workspaces (never ``/``, /proc, /sys, /dev, nor a folder others may
write in, such as /tmp), the database letting go of a workspace no longer served, and the
state file that remembers the added, removed and configured workspaces.

Every test here runs with ``no_store_outside``: as root, a daemon that accepted ``/`` or
``/tmp`` would make a ``.simpleaide/`` there; the tripwire refuses (and so fails the test)
before anything is made outside the test's own folder.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.config import ConfigError, load_config
from simpleaided.app.daemon import Daemon
from simpleaided.domain.errors import UnsafePath
from simpleaided.services import workspaces as workspaces_module
from simpleaided.services.workspaces import MAX_REMOVED, WorkspaceRegistry
from simpleaided.store import runstore, safefs
from tests.support.daemon import ConfigSource, running_daemon
from tests.support.rpc import RpcClient, RpcFailed
from tests.support.runs import lay_out_run
from tests.support.waiting import eventually

IS_ROOT = os.getuid() == 0
NOBODY = 65534


@pytest.fixture(autouse=True)
def no_store_outside(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail, making nothing, any attempt to create a folder outside ``short_tmp``."""
    open_dir = safefs.open_dir

    def guarded(parent: int, name: str, where: str, *, create: bool = False) -> int:
        if create:
            inside = os.readlink(f"/proc/self/fd/{parent}")
            assert inside == str(short_tmp) or inside.startswith(f"{short_tmp}/"), (
                f"tripwire: {name} would be made in {inside}"
            )
        return open_dir(parent, name, where, create=create)

    monkeypatch.setattr(safefs, "open_dir", guarded)


async def refusal(client: RpcClient, method: str, **params: Any) -> str:
    """The message of a call that must be refused as invalid input."""
    failed = await client.error(method, **params)
    assert failed.code == -32602, failed.message
    return failed.message


SLASH = "/ cannot be a workspace: choose a project folder"


def kernel_tree(path: str, tree: str) -> str:
    return (
        f"cannot use {path} as a workspace: it is in {tree}, which the kernel makes up (no "
        "project lives there); choose a folder of your own, such as one in your home folder"
    )


async def test_slash_and_the_kernels_trees_are_never_workspaces(
    client: RpcClient, daemon: Daemon, short_tmp: Path
) -> None:
    (short_tmp / "to-root").symlink_to("/")
    (short_tmp / "to-proc").symlink_to("/proc/self")
    # Refused by the param's own check, in its words (not the pattern's), before any disk.
    for path in ("/", "//", "/./"):
        assert await refusal(client, "workspaces.add", path=path) == f"path: {SLASH}"
    # A symlink to /: seen only once resolved, on disk.
    assert await refusal(client, "workspaces.add", path=str(short_tmp / "to-root")) == SLASH
    # runs create in /, and a reading command there: the same words.
    assert await refusal(client, "runs.create", workspace="/") == f"workspace: {SLASH}"
    assert await refusal(client, "runs.list", workspace="//") == f"workspace: {SLASH}"
    # /proc/self/cwd would be resolved by the daemon: to its own folder.
    assert await refusal(client, "workspaces.add", path="/proc/self/cwd") == "path: " + (
        kernel_tree("/proc/self/cwd", "/proc")
    )
    for path, tree in (("/sys/kernel", "/sys"), ("/dev/shm", "/dev"), ("/proc", "/proc")):
        assert await refusal(client, "workspaces.add", path=path) == "path: " + kernel_tree(
            path, tree
        )
    message = await refusal(client, "workspaces.add", path=str(short_tmp / "to-proc"))
    pid = message.removeprefix("cannot use /proc/").split(" ")[0]
    assert pid.isdigit() and message == kernel_tree(f"/proc/{pid}", "/proc")
    assert await client.call("workspaces.list") == []
    assert (await client.call("db.status"))["error"] == "not configured"


def test_the_config_file_cannot_list_slash_or_the_kernels_trees(short_tmp: Path) -> None:
    config = short_tmp / "config.toml"
    for listed, words in (("/", SLASH), ("/proc/self/cwd", kernel_tree("/proc/self/cwd", "/proc"))):
        config.write_text(f"workspaces = [{json.dumps(listed)}]\n")
        with pytest.raises(ConfigError) as refused:
            load_config(config_file=str(config), environ={})
        assert words in str(refused.value)


async def test_a_folder_others_may_write_in_is_refused_saying_what_to_do(
    client: RpcClient, short_tmp: Path
) -> None:
    # /tmp itself, as root owns it: a shared folder.
    assert await refusal(client, "workspaces.add", path="/tmp") == (
        "refusing workspace /tmp: it is a shared folder everyone may write in, where others "
        "could tamper with its .simpleaide/; choose a project folder of your own (one made "
        "inside it will do)"
    )
    assert await refusal(client, "runs.create", workspace="/tmp") == await refusal(
        client, "workspaces.add", path="/tmp"
    )
    assert not os.path.lexists("/tmp/.simpleaide")
    shared = short_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert "it is a shared folder everyone may write in" in await refusal(
        client, "workspaces.add", path=str(shared)
    )
    open_to_all = short_tmp / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    assert await refusal(client, "runs.create", workspace=str(open_to_all)) == (
        f"refusing workspace {open_to_all}: everyone may write in it, so others could tamper "
        f"with its .simpleaide/; make it yours alone (chmod o-w {open_to_all}) or choose "
        "another folder"
    )
    for folder in (shared, open_to_all):
        assert not (folder / ".simpleaide").exists()
    open_to_all.chmod(0o755)  # as the message says
    await client.call("workspaces.add", path=str(open_to_all))
    assert (open_to_all / ".simpleaide" / "runs").is_dir()


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a folder another group")
async def test_a_folder_its_group_may_write_in_is_refused_unless_the_group_is_yours(
    client: RpcClient, short_tmp: Path
) -> None:
    mine = short_tmp / "mine"
    mine.mkdir()
    mine.chmod(0o775)  # a umask of 002, with the user's own group (root's: root, no members)
    await client.call("workspaces.add", path=str(mine))
    shared = short_tmp / "team"
    shared.mkdir()
    os.chown(shared, -1, NOBODY)
    shared.chmod(0o775)
    message = await refusal(client, "workspaces.add", path=str(shared))
    assert message.startswith(f"refusing workspace {shared}: the other members of group ")
    assert message.endswith(
        f"may write in it, so they could tamper with its .simpleaide/; make it yours alone "
        f"(chmod g-w {shared}) or choose another folder"
    )
    assert not (shared / ".simpleaide").exists()


async def test_a_served_workspace_is_not_read_once_others_may_write_in_it(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    run_id = lay_out_run(workspace, "completed", ["completed"])
    workspace.chmod(0o777)
    async with (
        running_daemon(socket_path, isolated_env / "state", workspaces=[str(workspace)]) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        assert await client.call("workspaces.list") == []
        assert [w for w in daemon.warnings if "everyone may write in it" in w]
        failed = await client.error("runs.get", runId=run_id)
        assert failed.code == -32001


@pytest.mark.parametrize("kind", ["open to all", "a symlink to /"])
async def test_no_default_database_file_is_made_where_no_workspace_may_be(
    isolated_env: Path, socket_path: Path, short_tmp: Path, kind: str
) -> None:
    if kind == "open to all":
        folder = short_tmp / "open"
        folder.mkdir()
        folder.chmod(0o777)
        words = f"refusing workspace {folder}: everyone may write in it"
    else:
        folder = short_tmp / "to-root"
        folder.symlink_to("/")
        words = SLASH
    async with running_daemon(socket_path, isolated_env / "state", workspaces=[str(folder)]) as (
        daemon
    ):
        assert [w for w in daemon.warnings if words in w]  # not served, and said why
        section = await daemon.database.probe()
        assert not section["connected"] and section["error"].startswith(words), section
    assert not (folder / ".simpleaide").exists()


# -- the database lets go of a workspace no longer served ------------------------------------


@pytest.fixture
async def reloadable(isolated_env: Path, socket_path: Path) -> AsyncIterator[tuple[Daemon, Any]]:
    source = ConfigSource(socket_path, isolated_env / "state")
    daemon = Daemon(source.load(), handle_signals=False, load_config=source.load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await daemon.watching.wait()
        yield daemon, source
        daemon.request_stop()


async def test_the_database_lets_go_of_a_removed_workspace_and_never_makes_its_store_again(
    reloadable: tuple[Daemon, ConfigSource], socket_path: Path, short_tmp: Path
) -> None:
    daemon, source = reloadable
    first, second = short_tmp / "p1", short_tmp / "p2"
    first.mkdir()
    second.mkdir()
    async with await RpcClient.connect(socket_path) as client:
        await client.call("runs.create", workspace=str(first))  # adopted: its default file
        await eventually(lambda: (first / ".simpleaide" / "dev.sqlite3").is_file(), 10)
        await client.call("workspaces.add", path=str(second))
        await client.call("workspaces.remove", path=str(first))
        # The next served workspace is adopted, as a start would.
        await eventually(lambda: (second / ".simpleaide" / "dev.sqlite3").is_file(), 10)
        assert daemon.database.section()["error"] is None
        shutil.rmtree(first / ".simpleaide")
        source.settings = {"db.timeout_seconds": 7}
        assert await daemon.reload()
        await daemon.database.probe()
        assert daemon.database.section()["connected"]
        assert not (first / ".simpleaide").exists()
        # The last one removed: not configured, and nothing made again.
        await client.call("workspaces.remove", path=str(second))
        await daemon.database.probe()
        assert daemon.database.section()["error"] == "not configured"
        shutil.rmtree(second / ".simpleaide")
        source.settings = {"db.timeout_seconds": 8}
        assert await daemon.reload()
        await daemon.database.probe()
        assert daemon.database.section()["error"] == "not configured"
        assert not (first / ".simpleaide").exists() and not (second / ".simpleaide").exists()
        # Served again: adopted again.
        await client.call("workspaces.add", path=str(first))
        await daemon.database.probe()
        assert daemon.database.section()["connected"]
        assert (first / ".simpleaide" / "dev.sqlite3").is_file()


async def test_a_workspace_served_still_is_adopted_when_the_config_drops_the_databases(
    reloadable: tuple[Daemon, ConfigSource], socket_path: Path, short_tmp: Path
) -> None:
    daemon, source = reloadable
    configured, added = short_tmp / "configured", short_tmp / "added"
    configured.mkdir()
    added.mkdir()
    source.workspaces = [str(configured)]
    assert await daemon.reload()
    async with await RpcClient.connect(socket_path) as client:
        await client.call("workspaces.add", path=str(added))
    await daemon.database.probe()
    assert (configured / ".simpleaide" / "dev.sqlite3").is_file()
    shutil.rmtree(configured / ".simpleaide")
    source.workspaces = []
    assert await daemon.reload()
    await daemon.database.probe()
    assert daemon.database.section()["connected"]
    assert (added / ".simpleaide" / "dev.sqlite3").is_file()
    assert not (configured / ".simpleaide").exists()


# -- the state file ---------------------------------------------------------------------------


def long_path(root: Path, n: int) -> str:
    """A path of about 4,000 bytes (no folder need exist for the state file)."""
    return str(root / "/".join([f"{n:04d}" + "x" * 195] * 20))


def test_the_state_file_keeps_every_added_and_removed_workspace_of_the_longest_paths(
    short_tmp: Path,
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    registry = WorkspaceRegistry([], state)
    registry.initial()
    added = [long_path(short_tmp, n) for n in range(300)]
    removed = [long_path(short_tmp, n) for n in range(1000, 1000 + MAX_REMOVED)]
    for path in added:
        registry.refuse(path, "added")  # remembered, as one another daemon holds for now
    for path in removed:
        registry.mark_removed(path, "remove")
    registry.save()
    assert (state / "workspaces.json").stat().st_size > 2 << 20
    again = WorkspaceRegistry([], state)
    assert [p for p, _ in again.initial()] == added
    assert again.removed() == removed[::-1]


async def test_adding_past_the_limit_is_refused_and_nothing_added_is_forgotten(
    client: RpcClient, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspaces_module, "MAX_ADDED", 2)
    folders = [short_tmp / f"w{n}" for n in range(3)]
    for folder in folders:
        folder.mkdir()
    for folder in folders[:2]:
        await client.call("workspaces.add", path=str(folder))
    failed = await client.error("workspaces.add", path=str(folders[2]))
    assert failed.message == (
        f"cannot add workspace {folders[2]}: 2 workspaces are added already; remove those "
        "you no longer use (simpleaide workspaces rm PATH)"
    )
    assert not (folders[2] / ".simpleaide").exists()
    await client.call("workspaces.add", path=str(folders[0]))  # already added: fine
    state = json.loads((short_tmp / "state" / "workspaces.json").read_text())
    assert state["workspaces"] == [str(f) for f in folders[:2]]
    await client.call("workspaces.remove", path=str(folders[0]))
    await client.call("workspaces.add", path=str(folders[2]))  # room again


async def test_a_workspace_the_config_dropped_while_the_daemon_was_down_stays_unserved(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    state = isolated_env / "state"
    dropped, kept = short_tmp / "dropped", short_tmp / "kept"
    dropped.mkdir()
    kept.mkdir()
    listed = [str(dropped), str(kept)]
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("workspaces.add", path=str(kept))  # added before it was listed
    async with running_daemon(socket_path, state, workspaces=listed):
        pass
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        assert await client.call("workspaces.list") == [
            {"path": str(kept), "runs": 0, "source": "added"}
        ]
        failed = await client.error("runs.list", workspace=str(dropped))
        assert failed.data == {"workspace": str(dropped), "removed": "config"}
        assert failed.message == (
            f"workspace {dropped} is not served: the config file no longer lists it; "
            f"serve it again with: simpleaide workspaces add {dropped}"
        )
    async with (  # still so after one more start
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        failed = await client.error("runs.list", workspace=str(dropped))
        assert failed.data == {"workspace": str(dropped), "removed": "config"}
        await client.call("workspaces.add", path=str(dropped))  # explicit: served
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        assert {w["path"] for w in await client.call("workspaces.list")} == set(listed)


class LoopOnly(dict[Any, Any]):
    """A dict that fails if read outside the thread that made it (the event loop's)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.owner = threading.get_ident()

    def _check(self) -> None:
        assert threading.get_ident() == self.owner, "read outside the event loop"

    def items(self) -> Any:
        self._check()
        return super().items()

    def __iter__(self) -> Iterator[Any]:
        self._check()
        return super().__iter__()


async def test_the_state_file_is_made_on_the_event_loop_and_only_written_in_a_thread(
    client: RpcClient, daemon: Daemon, short_tmp: Path
) -> None:
    registry = daemon.runs.registry
    registry._sources = LoopOnly(registry._sources)
    registry._refused = LoopOnly(registry._refused)
    registry._removed = LoopOnly(registry._removed)
    folder = short_tmp / "w"
    folder.mkdir()
    await client.call("workspaces.add", path=str(folder))
    await client.call("workspaces.remove", path=str(folder))
    state = json.loads((short_tmp / "state" / "workspaces.json").read_text())
    assert state["removed"] == [{"path": str(folder), "by": "remove"}]


async def test_an_unknown_run_is_looked_for_in_unserved_workspaces_off_the_event_loop(
    client: RpcClient, socket_path: Path, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = short_tmp / "w"
    folder.mkdir()
    await client.call("workspaces.add", path=str(folder))
    await client.call("workspaces.remove", path=str(folder))
    unknown = "20260101T000000000Z-00000000"
    looking, go_on = threading.Event(), threading.Event()
    waited: list[bool] = []
    lstat = os.lstat

    def hung_mount(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if unknown in str(path):
            looking.set()
            # A network mount that does not answer until the daemon has answered a ping
            # meanwhile (on the event loop, this waits the whole bound, the daemon frozen).
            waited.append(go_on.wait(5))
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", hung_mount)
    try:
        async with (
            await RpcClient.connect(socket_path) as other,
            anyio.create_task_group() as tg,
        ):

            async def look() -> None:
                with pytest.raises(RpcFailed, match="does not exist"):
                    await other.call("runs.get", runId=unknown)

            tg.start_soon(look)
            await eventually(looking.is_set, 10, interval=0.01)
            assert await client.call("daemon.ping") == "pong"
            go_on.set()
    finally:
        go_on.set()
    assert waited == [True]


async def test_an_added_workspace_that_cannot_be_served_is_kept_warned_about_and_retried(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    state = isolated_env / "state"
    folder = short_tmp / "w"
    folder.mkdir()
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("workspaces.add", path=str(folder))
    # As after an upgrade whose rule refuses it (or a disk not mounted yet): the first
    # start saves the state file at once (it has no "configured" key).
    saved = json.loads((state / "workspaces.json").read_text())
    del saved["configured"]
    (state / "workspaces.json").write_text(json.dumps(saved))
    folder.chmod(0o777)
    async with (
        running_daemon(socket_path, state) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        assert await client.call("workspaces.list") == []
        [warning] = [w for w in daemon.warnings if str(folder) in w]
        assert warning.startswith(f"workspace {folder} is not served: refusing workspace ")
        assert f"(chmod o-w {folder})" in warning
        assert warning.endswith(
            "; it stays added and is tried again until it can be served (to forget it: "
            f"simpleaide workspaces rm {folder})"
        )
        state_file = json.loads((state / "workspaces.json").read_text())
        assert state_file["workspaces"] == [str(folder)]
        assert state_file["removed"] == []
        folder.chmod(0o755)  # put right: served by the next retry, its warning gone
        await eventually(lambda: daemon.runs.registry.find_canonical(str(folder)) is not None, 10)
        assert not [w for w in daemon.warnings if str(folder) in w]
        assert await client.call("workspaces.list") == [
            {"path": str(folder), "runs": 0, "source": "added"}
        ]
    # Forgotten only when asked.
    folder.chmod(0o777)
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("workspaces.remove", path=str(folder))
    assert json.loads((state / "workspaces.json").read_text())["workspaces"] == []


async def test_a_run_in_an_added_workspace_that_cannot_be_served_is_told_why(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    """Not "another simpleaided serves it": the folder's own fault, in the words of the
    warning, for a run in it and for a scope naming it."""
    state = isolated_env / "state"
    folder = short_tmp / "w"
    folder.mkdir()
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        await client.call("workspaces.add", path=str(folder))
        run_id = (await client.call("runs.create", workspace=str(folder)))["id"]
    folder.chmod(0o777)  # while the daemon was stopped
    try:
        async with (
            running_daemon(socket_path, state),
            await RpcClient.connect(socket_path) as client,
        ):
            for method, params in (
                ("runs.get", {"runId": run_id}),
                ("runs.list", {"workspace": str(folder)}),
                ("status.get", {"workspace": str(folder)}),
            ):
                failed = await client.error(method, **params)
                assert "another simpleaided" not in failed.message, failed
                assert f"(chmod o-w {folder})" in failed.message, failed
                assert failed.message.endswith(
                    "it stays added and is tried again until it can be served (to forget "
                    f"it: simpleaide workspaces rm {folder})"
                ), failed
                assert "workspaces add" not in failed.message, failed
    finally:
        folder.chmod(0o755)


async def test_a_workspace_given_by_the_flag_is_not_remembered_as_configured(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    state = isolated_env / "state"
    flagged = short_tmp / "flagged"
    flagged.mkdir()
    config = load_config(
        overrides={"daemon.socket": str(socket_path), "daemon.state_dir": str(state)},
        extra_workspaces=[str(flagged)],
    )
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with await RpcClient.connect(socket_path) as client:
            assert await client.call("workspaces.list") == [
                {"path": str(flagged), "runs": 0, "source": "config"}
            ]
            other = short_tmp / "other"
            other.mkdir()
            await client.call("workspaces.add", path=str(other))  # the state file written
        daemon.request_stop()
    assert json.loads((state / "workspaces.json").read_text())["configured"] == []
    # A start without the flag: not served, and not "removed by the config file" either.
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        assert [w["path"] for w in await client.call("workspaces.list")] == [str(other)]
        failed = await client.error("runs.list", workspace=str(flagged))
        assert failed.data == {"workspace": str(flagged), "removed": None}, failed
        assert "config file" not in failed.message, failed


def test_a_group_that_cannot_be_looked_up_is_said_so_and_looked_up_again(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder of the user's whose group may write in it (a umask of 002), the group the
    # user's own; the directory service (LDAP, SSSD) does not answer at first.
    me, gid = 4242, 4243
    folder = short_tmp / "mine"
    folder.mkdir()
    fields = list(os.stat(folder))
    fields[0], fields[4], fields[5] = 0o40775, me, gid  # mode, uid, gid
    st = os.stat_result(fields)
    user = pwd.struct_passwd(("me", "x", me, gid, "", "/home/me", "/bin/sh"))
    answering = False

    def getgrgid(asked: int) -> grp.struct_group:
        if not answering:
            raise KeyError(f"getgrgid(): gid not found: {asked}")
        return grp.struct_group(("me", "x", asked, []))

    monkeypatch.setattr(os, "getuid", lambda: me)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: user)
    monkeypatch.setattr(grp, "getgrgid", getgrgid)
    with pytest.raises(UnsafePath) as refused:
        runstore.check_written_by_you_alone(str(folder), st)
    assert refused.value.message == (
        f"refusing workspace {folder}: its group may write in it, and group {gid} cannot be "
        f"looked up to tell whether it is yours alone; make it yours alone (chmod g-w "
        f"{folder}) or try again once the group can be looked up"
    )
    answering = True  # the outage over: not remembered as "others may write"
    runstore.check_written_by_you_alone(str(folder), st)


async def test_a_folder_whose_real_path_is_not_utf8_is_refused_in_words(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    os.mkdir(os.fsencode(short_tmp) + b"/caf\xe9")
    link = short_tmp / "link"
    link.symlink_to(os.fsdecode(os.fsencode(short_tmp) + b"/caf\xe9"))
    words = (
        f"cannot use {short_tmp}/caf\\xe9 as a workspace: the folder's real path is not UTF-8 "
        "text (byte \\xe9), and the daemon keeps paths as UTF-8 text; rename the folder (or "
        "the one holding it) to a UTF-8 name"
    )
    state = isolated_env / "state"
    async with (
        running_daemon(socket_path, state),
        await RpcClient.connect(socket_path) as client,
    ):
        assert await refusal(client, "workspaces.add", path=str(link)) == words
        assert await refusal(client, "runs.create", workspace=str(link)) == words
        assert await client.call("workspaces.list") == []
    # From the config file: the daemon starts, and says why it does not serve it.
    async with (
        running_daemon(socket_path, state, workspaces=[str(link)]) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        assert await client.call("workspaces.list") == []
        assert f"workspace {link} is not served: {words}" in daemon.warnings
        assert (
            f"workspace {link} is not served: {words}"
            in (await client.call("daemon.info"))["warnings"]
        )


async def test_a_scope_naming_a_folder_that_cannot_be_a_workspace_says_why(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    """Not "serve it with: simpleaide workspaces add /tmp", which would be refused."""
    open_to_all = short_tmp / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    fine = short_tmp / "fine"
    fine.mkdir()
    try:
        async with (
            running_daemon(socket_path, isolated_env / "state"),
            await RpcClient.connect(socket_path) as client,
        ):
            shared = await client.error("runs.list", workspace="/tmp")
            assert shared.message.startswith(
                "workspace /tmp is not served, and cannot be: it is a shared folder"
            ), shared
            assert "workspaces add" not in shared.message, shared
            assert shared.data == {"workspace": "/tmp", "removed": None}
            opened = await client.error("status.get", workspace=str(open_to_all))
            assert f"(chmod o-w {open_to_all})" in opened.message, opened
            assert "workspaces add" not in opened.message, opened
            # One that could be served is still told how.
            unserved = await client.error("runs.list", workspace=str(fine))
            assert unserved.message.endswith(f"simpleaide workspaces add {fine}"), unserved
    finally:
        open_to_all.chmod(0o755)
