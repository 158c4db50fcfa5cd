"""status.subscribe and runs.subscribe on the real daemon: ordering, coalescing, lifetime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from simpleaided.app.daemon import Daemon
from simpleaided.domain.api import StatusSnapshot
from simpleaided.services.events import COALESCE_SECONDS
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually


async def test_status_subscribe_snapshot_then_changes(
    client: RpcClient, daemon: Daemon, socket_path: Path, workspace: Path
) -> None:
    snapshot = StatusSnapshot.model_validate(await client.call("status.subscribe"))
    assert snapshot.status.runs.total == 0
    async with await RpcClient.connect(socket_path) as other:
        run = await other.call("runs.create", workspace=str(workspace))
        await other.call("steps.create", runId=run["id"], name="plan", start=True)
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(5):
        while not seen or seen[-1]["status"]["runs"]["active"] != 1:
            seen.append(await client.notification("status.changed"))
    seqs = [snapshot.seq] + [n["seq"] for n in seen]
    assert seqs == sorted(set(seqs))  # strictly increasing
    assert seen[-1]["status"]["runs"]["last"]["id"] == run["id"]


async def test_nothing_is_lost_between_snapshot_and_notifications(
    client: RpcClient, workspace: Path
) -> None:
    # The change travels in the same message as the subscription, right after it.
    replies = await client.exchange(
        [
            {"jsonrpc": "2.0", "method": "status.subscribe", "id": 1},
            {
                "jsonrpc": "2.0",
                "method": "runs.create",
                "params": {"workspace": str(workspace)},
                "id": 2,
            },
        ]
    )
    snapshot = replies[0]["result"]
    assert snapshot["status"]["runs"]["total"] == 0
    changed = await client.notification("status.changed")
    assert changed["seq"] > snapshot["seq"]
    assert changed["status"]["runs"]["total"] == 1


async def test_bursts_are_coalesced(client: RpcClient, socket_path: Path, workspace: Path) -> None:
    await client.call("status.subscribe")
    create = {"jsonrpc": "2.0", "method": "runs.create", "params": {"workspace": str(workspace)}}
    async with await RpcClient.connect(socket_path) as other:
        started = anyio.current_time()
        await other.exchange([{**create, "id": n} for n in range(100)])
        elapsed = anyio.current_time() - started
    notes: list[dict[str, Any]] = []
    with anyio.fail_after(5):
        while not notes or notes[-1]["status"]["runs"]["total"] != 100:
            notes.append(await client.notification("status.changed"))
    # 100 changes, at most one notification per period (plus the first one).
    assert len(notes) <= elapsed / COALESCE_SECONDS + 2
    assert len(notes) < 100
    assert [n["seq"] for n in notes] == sorted({n["seq"] for n in notes})


async def test_run_events_in_order(client: RpcClient, socket_path: Path, workspace: Path) -> None:
    await client.call("runs.subscribe")
    async with await RpcClient.connect(socket_path) as other:
        run = await other.call("runs.create", workspace=str(workspace))
        rid = run["id"]
        await other.call("steps.create", runId=rid, name="plan", start=True)
        await other.call("artifacts.put", runId=rid, step=1, name="plan.md", text="x")
        await other.call("steps.complete", runId=rid, step=1)
        await other.call("runs.complete", runId=rid)
        await other.call("runs.delete", runId=rid)
    events: list[dict] = []
    with anyio.fail_after(5):
        while not events or events[-1]["type"] != "deleted":
            events += (await client.notification("run.event"))["events"]
    kinds = [
        (e["type"], e.get("run", {}).get("status") or e.get("step", {}).get("status"))
        for e in events
    ]
    assert kinds == [
        ("created", "pending"),
        ("step", "running"),  # a change's step events come before its run's
        ("status", "running"),
        ("artifact", None),
        ("step", "completed"),
        ("updated", "running"),  # updatedAt moved with the step
        ("status", "completed"),
        ("deleted", None),
    ]
    assert all(e["runId"] == rid for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))


async def run_events_until_it_ends(client: RpcClient, rid: str) -> list[tuple[str, str]]:
    """The (type, status) of each event of run ``rid`` up to the one saying it ended."""
    kinds: list[tuple[str, str]] = []
    with anyio.fail_after(5):
        while not kinds or kinds[-1] not in {("status", s) for s in ("failed", "cancelled")}:
            for e in (await client.notification("run.event"))["events"]:
                kinds.append((e["type"], (e.get("run") or e.get("step"))["status"]))
    return kinds


async def test_the_event_that_ends_a_run_comes_after_its_steps(
    client: RpcClient, socket_path: Path, workspace: Path
) -> None:
    """A client that stops following a run when it ends (simpleaide runs watch) has seen the
    step that failed it, and the steps its end closed."""
    async with await RpcClient.connect(socket_path) as other:
        failing = (await other.call("runs.create", workspace=str(workspace)))["id"]
        await other.call("steps.create", runId=failing, name="test", start=True)
        await other.call("steps.create", runId=failing, name="deploy")  # pending
        cancelled = (await other.call("runs.create", workspace=str(workspace)))["id"]
        await other.call("steps.create", runId=cancelled, name="plan", start=True)
        await client.call("runs.subscribe", runId=failing)
        await other.call("steps.fail", runId=failing, step=1, errorMessage="tests are red")
        assert await run_events_until_it_ends(client, failing) == [
            ("step", "failed"),
            ("step", "skipped"),  # deploy, closed by the run's end
            ("status", "failed"),
        ]
        await client.call("runs.subscribe", runId=cancelled)
        await other.call("runs.cancel", runId=cancelled)
        assert await run_events_until_it_ends(client, cancelled) == [
            ("step", "failed"),  # closed by the run's end, which it says
            ("status", "cancelled"),
        ]


async def test_run_subscription_can_follow_one_run(
    client: RpcClient, socket_path: Path, workspace: Path
) -> None:
    async with await RpcClient.connect(socket_path) as other:
        followed = await other.call("runs.create", workspace=str(workspace))
        await client.call("runs.subscribe", runId=followed["id"])
        await other.call("runs.create", workspace=str(workspace))  # not followed
        await other.call("runs.cancel", runId=followed["id"])
    params = await client.notification("run.event")
    assert [e["runId"] for e in params["events"]] == [followed["id"]]
    assert params["events"][0]["run"]["status"] == "cancelled"


async def test_unsubscribe_and_connection_close_end_subscriptions(
    daemon: Daemon, socket_path: Path, workspace: Path
) -> None:
    async with await RpcClient.connect(socket_path) as c:
        await c.call("status.subscribe")
        await c.call("runs.subscribe")
        assert daemon.events.subscriptions == 2
        assert await c.call("status.unsubscribe") == {"unsubscribed": True}
        assert await c.call("status.unsubscribe") == {"unsubscribed": False}
        assert daemon.events.subscriptions == 1
    # The server notices the close on its own time and exposes no event for it.
    await eventually(lambda: not daemon.events.subscriptions, 5)
    async with await RpcClient.connect(socket_path) as c:
        await c.call("runs.create", workspace=str(workspace))  # nobody to tell: no error
        assert await c.call("daemon.ping") == "pong"


async def test_a_subscriber_that_never_reads_does_not_delay_others(
    daemon: Daemon, socket_path: Path, workspace: Path
) -> None:
    title = "t" * 500  # every event carries it: ~0.5 MB of events, more than socket buffers
    create = {
        "jsonrpc": "2.0",
        "method": "runs.create",
        "params": {"workspace": str(workspace), "title": title},
    }
    async with await anyio.connect_unix(socket_path) as deaf:
        await deaf.send(b'{"jsonrpc":"2.0","method":"runs.subscribe","id":1}\n')
        with anyio.fail_after(5):  # subscribed for sure; from now on it reads nothing
            assert b'"result"' in await deaf.receive()
        async with await RpcClient.connect(socket_path) as busy:
            await busy.call("status.subscribe")
            await busy.exchange([{**create, "id": n} for n in range(800)])
            with anyio.fail_after(5):
                while True:
                    doc = (await busy.notification("status.changed"))["status"]
                    if doc["runs"]["total"] == 800:
                        break
            assert await busy.call("daemon.ping") == "pong"


async def test_removing_a_subscribed_workspace_ends_only_that_subscription(
    client: RpcClient, socket_path: Path, workspace: Path, short_tmp: Path
) -> None:
    other = short_tmp / "other"
    other.mkdir()
    await client.call("workspaces.add", path=str(workspace))
    await client.call("status.subscribe", workspace=str(workspace))
    await client.call("workspaces.remove", path=str(workspace))
    async with await RpcClient.connect(socket_path) as c:
        await c.call("status.subscribe")
        await c.call("runs.create", workspace=str(other))  # a change: both pumps wake
        # (The database let go of the removed workspace for this one: a change of its own.)
        with anyio.fail_after(5):
            while (await c.notification("status.changed"))["status"]["runs"]["total"] != 1:
                pass
    assert await client.call("daemon.ping") == "pong"


async def test_a_document_that_reads_differently_with_time_alone_is_sent_again(
    client: RpcClient, socket_path: Path, workspace: Path
) -> None:
    """No change announces that "failed 0s ago" became "failed 1s ago": the daemon notices."""
    async with await RpcClient.connect(socket_path) as other:
        run = await other.call("runs.create", workspace=str(workspace))
        await other.call("steps.create", runId=run["id"], name="plan", start=True)
        await other.call("runs.fail", runId=run["id"], errorMessage="boom")
    snapshot = await client.call("status.subscribe")
    shown = snapshot["status"]["chips"][4]["tooltip"]
    assert shown.startswith("Last run failed ") and shown.endswith(" ago: boom")
    with anyio.fail_after(5):
        while True:
            params = await client.notification("status.changed")
            tooltip = params["status"]["chips"][4]["tooltip"]
            if tooltip != shown:
                break
    assert params["seq"] > snapshot["seq"]
    assert tooltip.startswith("Last run failed ") and tooltip.endswith(" ago: boom")
    # Nothing else changed: the next notification only comes when the words change again.
    assert params["status"]["runs"]["total"] == 1
