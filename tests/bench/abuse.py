"""The ``abuse`` scenario: a healthy client's ``status.get`` while idle, slow and flooding
clients are connected (README: Benchmarks), the daemon against the floor server in alternating
rounds."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import orjson

from tests.bench import client, procs
from tests.bench import tree as trees
from tests.bench.report import Row, ratio_at_most, summarize
from tests.bench.scenario import Scenario
from tests.bench.settings import ABUSE_FLOOD, ABUSE_IDLE, ABUSE_SLOW

ABUSE_RUNS = 1000  # the store the daemon serves during the abuse scenario


class Abuse(Scenario):
    """A healthy client beside abusive ones, for the floor and the daemon."""

    name = "abuse"

    def run(self) -> None:
        self.abuse_rows(self.abuse())

    @contextlib.contextmanager
    def abusers(self, server: procs.Server) -> Iterator[dict[str, Any]]:
        """``ABUSE_IDLE`` idle, ``ABUSE_SLOW`` slow and ``ABUSE_FLOOD`` flooding clients
        on ``server`` during the block (from a worker process), all connected and flooding
        before the block starts; what they saw lands under ``"result"`` afterwards."""
        ready = self.tmp / "abuse-ready"
        stop = self.tmp / "abuse-stop"
        for marker in (ready, stop):
            marker.unlink(missing_ok=True)
        future: Future[Any] = self.pool.submit(
            client.abuse_job,
            server.socket,
            ABUSE_IDLE,
            ABUSE_SLOW,
            ABUSE_FLOOD,
            str(ready),
            str(stop),
        )
        out: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():  # a worker process: a file is its only signal
                if future.done():
                    future.result()  # raises what went wrong
                    raise RuntimeError("the abusive clients stopped before they were ready")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{server.name}: the abusive clients never got going")
                time.sleep(0.01)
            time.sleep(0.2)  # let the flood fill every buffer it can
            yield out
        finally:
            stop.touch()
            out["result"] = future.result(timeout=60)

    def abuse(self) -> dict[str, Any]:
        """A healthy client's ``status.get`` round trips (on its own connection) with no
        other client, then while the abusive clients are connected, for the floor and the
        daemon in alternating rounds; the daemon serves a store of ``ABUSE_RUNS`` runs."""
        tree = trees.ensure_tree(self.s.cache_root, ABUSE_RUNS, reuse=self.s.reuse_cache)
        home = self.tmp / "abuse"
        home.mkdir(mode=0o700)
        self.log(
            f"abuse: a healthy client while {ABUSE_IDLE} idle, {ABUSE_SLOW} slow and "
            f"{ABUSE_FLOOD} flooding clients are connected, floor and daemon"
        )
        daemon = procs.start_daemon(home, tree.workspace, "daemon (abuse)")
        with procs.running(daemon), procs.running(procs.start_floor(home)) as floor:
            procs.wait_watches_settled(daemon, ABUSE_RUNS)
            servers = {"floor": floor, "daemon": daemon}
            names = list(servers)
            idle: dict[str, list[float]] = {name: [] for name in names}
            abused: dict[str, list[float]] = {name: [] for name in names}
            abusers: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            cpu: dict[str, list[float]] = {name: [] for name in names}
            for r in range(self.s.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    server = servers[name]
                    idle[name] += self.latency(server, self.s.abuse_samples)
                    with self.abusers(server) as seen:
                        cpu_before, began = procs.cpu_seconds(server.pid), time.monotonic()
                        abused[name] += self.latency(server, self.s.abuse_samples)
                        elapsed = time.monotonic() - began
                        cpu[name].append((procs.cpu_seconds(server.pid) - cpu_before) / elapsed)
                    abusers[name].append(seen["result"])
                    server.check_alive()
            info = _daemon_info(daemon)
        figures: dict[str, Any] = {
            name: {
                "idleUs": summarize(idle[name]),
                "abusedUs": summarize(abused[name]),
                "abusers": abusers[name],
                "floodRepliesReadPerSecond": statistics.fmean(
                    a["floodRepliesReadPerSecond"] for a in abusers[name]
                ),
                "closedByServer": sum(a["closedByServer"] for a in abusers[name]),
                "serverCpuShareUnderAbuse": statistics.fmean(cpu[name]),
            }
            for name in names
        }
        figures["daemon"]["connections"] = info.get("connections")
        self.data["abuse"] = figures
        return figures

    def abuse_rows(self, figures: dict[str, Any]) -> None:
        """The abuse scenario's rows; the target compares with the floor under the same
        abuse (the target: "≤ 3× the floor's p99")."""
        floor, daemon = figures["floor"], figures["daemon"]
        who = f"{ABUSE_IDLE} idle + {ABUSE_SLOW} slow + {ABUSE_FLOOD} flooding clients"
        self.rows += [
            Row("floor p50, idle (abuse scenario)", floor["idleUs"]["p50"], "us"),
            Row("floor p99, idle (abuse scenario)", floor["idleUs"]["p99"], "us"),
            Row(f"floor p50, {who}", floor["abusedUs"]["p50"], "us"),
            Row(f"floor p99, {who}", floor["abusedUs"]["p99"], "us"),
            Row(
                "healthy status.get p99, idle (abuse scenario)",
                daemon["idleUs"]["p99"],
                "us",
                floor["idleUs"]["p99"],
            ),
            Row(
                f"healthy status.get p50, {who}",
                daemon["abusedUs"]["p50"],
                "us",
                floor["abusedUs"]["p50"],
            ),
            Row(
                f"healthy status.get p99, {who} (vs floor under the same abuse)",
                daemon["abusedUs"]["p99"],
                "us",
                floor["abusedUs"]["p99"],
                "≤ 3× floor (same abuse)",
                ratio_at_most(3.0),
            ),
            Row(
                "the same p99 vs the floor's idle p99",
                daemon["abusedUs"]["p99"],
                "us",
                floor["idleUs"]["p99"],
            ),
            Row(
                "flooders' replies read per second (vs floor)",
                daemon["floodRepliesReadPerSecond"],
                "rps",
                floor["floodRepliesReadPerSecond"],
            ),
            Row(
                "server CPU share while abused (vs floor)",
                daemon["serverCpuShareUnderAbuse"] * 100,
                "%",
                floor["serverCpuShareUnderAbuse"] * 100,
            ),
            Row(
                "abusive connections closed by the server",
                float(daemon["closedByServer"]),
                "count",
                note="(none: they are slowed, not dropped)",
            ),
        ]


def _daemon_info(server: procs.Server) -> dict[str, Any]:
    """``daemon.info`` of a running daemon."""
    request = b'{"jsonrpc":"2.0","method":"daemon.info","id":1}\n'
    with client.connect(server.socket) as sock:
        reply: dict[str, Any] = orjson.loads(client.roundtrip(sock, request))
    result: dict[str, Any] = reply.get("result", {})
    return result
