"""The benchmark run: every figure of DESIGN.md §8, each against a baseline measured in the
same run (the machines are noisy), printed as a table and written as JSON.

Two scenarios, each runnable alone (``--only``): ``sizes`` and ``abuse``.

First the daemon on an empty store (the start-time and RSS baselines). Then, per store size:
the daemon's start-up (one throwaway start, then timed ones), its RSS and inotify watches,
``status.get`` latency and throughput alternating round by round with the floor server (so
drifting noise hits both alike), the same figures under a stream of external writes,
external-write visibility, and the naive scan. ``simpleaide status`` is timed once, against
the first size's daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from tests.bench import bench_client as client
from tests.bench import bench_procs as procs
from tests.bench import bench_tree as trees
from tests.bench.bench_report import (
    Row,
    at_most,
    ratio_at_least,
    ratio_at_most,
    summarize,
    table,
)

STATUS = client.STATUS_REQUEST
DEFAULT_SIZES = [1000, 10_000, 100_000]
QUICK_SIZES = [1000, 10_000]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MiB = 1024 * 1024
WATCH_SLACK = 16  # "one watch per run, plus a few"
SCENARIOS = ("sizes", "abuse")
ABUSE_IDLE, ABUSE_SLOW, ABUSE_FLOOD = 200, 20, 20  # DESIGN.md §8's abusive clients
ABUSE_RUNS = 1000  # the store the daemon serves during the abuse scenario


@dataclass
class Settings:
    """How much to measure (``--quick`` shrinks every count and duration)."""

    sizes: list[int]
    quick: bool
    samples: int  # sequential round trips per latency figure
    duration: float  # seconds per throughput window (one per round)
    rounds: int  # floor and daemon alternate this many times per figure
    pin: bool  # latency: server's event loop on CPU 0, client on CPU 1
    connections: int
    client_procs: int
    starts: int  # timed starts per size (after one throwaway start)
    naive_reps: int
    visibility_samples: int
    visibility_timeout: float
    visibility_give_up: int  # stop after this many misses in a row
    hammer_connections: int
    cli_pairs: int
    write_rate: float
    writer_runs: int  # how many runs the writer rewrites (at random)
    cache_root: Path
    reuse_cache: bool
    output: Path
    only: list[str]  # the scenarios to run
    abuse_samples: int  # healthy round trips per server and round, idle and under abuse


def parse_args(argv: list[str] | None) -> Settings:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Benchmark simpleaided against the targets of DESIGN.md §8.",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 1 minute)")
    parser.add_argument(
        "--sizes",
        help="comma-separated store sizes in runs "
        f"(default {','.join(map(str, DEFAULT_SIZES))}; with --quick "
        f"{','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client-procs", type=int, default=2, help="client worker processes")
    parser.add_argument("--write-rate", type=float, default=500.0, help="external writes/s")
    parser.add_argument("--cache-dir", type=Path, default=trees.default_cache_root())
    parser.add_argument("--no-cache", action="store_true", help="regenerate the run trees")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--only",
        metavar="SCENARIO",
        help="comma-separated scenarios to run (default all): "
        "sizes (every figure per store size), "
        f"abuse (a healthy client while {ABUSE_IDLE} idle, {ABUSE_SLOW} slow and "
        f"{ABUSE_FLOOD} flooding clients are connected)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin server and client to different CPUs while measuring latency",
    )
    args = parser.parse_args(argv)
    if args.sizes:
        try:
            sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--sizes: not a list of numbers: {args.sizes!r}")
        if not sizes or min(sizes) < 10:
            parser.error("--sizes: every size must be at least 10 runs")
    else:
        sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    only = [name.strip() for name in (args.only or ",".join(SCENARIOS)).split(",") if name]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown or not only:
        parser.error(f"--only: choose among {', '.join(SCENARIOS)} (got {args.only!r})")
    quick = bool(args.quick)
    return Settings(
        sizes=sizes,
        quick=quick,
        samples=3000 if quick else 20_000,
        duration=0.5 if quick else 1.5,
        rounds=2 if quick else 3,
        pin=not args.no_pin and {0, 1} <= os.sched_getaffinity(0),
        connections=args.connections,
        client_procs=max(1, args.client_procs),
        starts=1 if quick else 3,
        naive_reps=2 if quick else 3,
        visibility_samples=40 if quick else 300,
        visibility_timeout=2.0,
        visibility_give_up=2 if quick else 3,
        hammer_connections=1,
        cli_pairs=10 if quick else 50,
        write_rate=args.write_rate,
        writer_runs=2000,
        cache_root=args.cache_dir,
        reuse_cache=not args.no_cache,
        output=args.output,
        only=only,
        abuse_samples=1500 if quick else 5000,
    )


class Bench:
    """One benchmark run: its worker processes, its temporary folder, its rows and data."""

    def __init__(self, settings: Settings, pool: ProcessPoolExecutor, tmp: Path) -> None:
        self.s = settings
        self.pool = pool
        self.tmp = tmp
        self.rows: list[Row] = []
        self.data: dict[str, Any] = {"sizes": {}}

    # -- helpers ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """Progress on stderr (the table goes to stdout)."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def warm_workers(self) -> None:
        """Start every worker process now, not in the middle of a measurement."""
        jobs = [self.pool.submit(time.sleep, 0.3) for _ in range(self.s.client_procs + 2)]
        for job in jobs:
            job.result()

    def latency(self, server: procs.Server, count: int) -> list[float]:
        """``count`` sequential round trips on one connection, in µs. With pinning, the
        server's main thread (its event loop) runs on CPU 0 and the client on CPU 1 for the
        duration: every round trip then wakes the other CPU, as it does for a real client,
        instead of depending on where the scheduler happens to place the two."""
        pin = self.s.pin
        if pin:
            os.sched_setaffinity(server.pid, {0})
        try:
            job = self.pool.submit(
                client.latency_job, server.socket, STATUS, count, 200, 1 if pin else None
            )
            return [ns / 1000 for ns in job.result()]
        finally:
            if pin and server.proc.poll() is None:
                os.sched_setaffinity(server.pid, os.sched_getaffinity(0))

    def throughput(self, server: procs.Server, conns: int) -> tuple[float, float]:
        """Replies per second over ``conns`` connections, spread over the client workers,
        for one window of ``duration`` seconds; and the server's CPU time per reply, in µs
        (what bounds throughput once the server is saturated)."""
        nprocs = min(self.s.client_procs, conns)
        split = [conns // nprocs + (1 if k < conns % nprocs else 0) for k in range(nprocs)]
        start_at = time.monotonic() + 0.2
        jobs = [
            self.pool.submit(
                client.throughput_job, server.socket, STATUS, c, start_at, self.s.duration
            )
            for c in split
        ]
        # The server's CPU over the clients' counting window only (not their set-up).
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu_before = procs.cpu_seconds(server.pid)
        time.sleep(max(0.0, start_at + self.s.duration - time.monotonic()))
        cpu = procs.cpu_seconds(server.pid) - cpu_before
        results = [job.result() for job in jobs]
        replies = sum(done for done, _ in results)
        if not replies:
            raise RuntimeError(f"{server.name}: no reply in a {self.s.duration} s window")
        rate = sum(done / seconds for done, seconds in results)
        return rate, cpu / replies * 1e6

    def rpc_figures(self, servers: dict[str, procs.Server]) -> dict[str, dict[str, Any]]:
        """Latency, then throughput at 1 and at ``connections`` connections, of every server
        in ``servers`` (by name), in ``rounds`` rounds that alternate between them (so
        drifting machine noise hits all alike). Latency samples of all rounds are pooled;
        throughput is the mean of the rounds."""
        names = list(servers)
        latency: dict[str, list[float]] = {name: [] for name in names}
        round_p50: dict[str, list[float]] = {name: [] for name in names}
        tput: dict[str, dict[int, list[float]]] = {name: {} for name in names}
        cpu: dict[str, dict[int, list[float]]] = {name: {} for name in names}
        per_round = max(1, self.s.samples // self.s.rounds)
        for r in range(self.s.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                samples = self.latency(servers[name], per_round)
                latency[name] += samples
                round_p50[name].append(statistics.median(samples))
        for conns in (1, self.s.connections):
            for r in range(self.s.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    rate, cpu_us = self.throughput(servers[name], conns)
                    tput[name].setdefault(conns, []).append(rate)
                    cpu[name].setdefault(conns, []).append(cpu_us)
        return {
            name: {
                "latencyUs": summarize(latency[name]),
                "latencyRoundsP50Us": round_p50[name],
                "throughput1": {
                    "perSecond": statistics.fmean(tput[name][1]),
                    "rounds": tput[name][1],
                    "serverCpuUsPerRequest": statistics.fmean(cpu[name][1]),
                },
                "throughputN": {
                    "connections": self.s.connections,
                    "processes": min(self.s.client_procs, self.s.connections),
                    "perSecond": statistics.fmean(tput[name][self.s.connections]),
                    "rounds": tput[name][self.s.connections],
                    "serverCpuUsPerRequest": statistics.fmean(cpu[name][self.s.connections]),
                },
            }
            for name in names
        }

    @contextlib.contextmanager
    def background(
        self, name: str, job: Callable[..., Any], *args: Any
    ) -> Iterator[dict[str, Any]]:
        """Run ``job(*args, stop_file)`` in a worker during the block; its result lands in
        the yielded dict under ``"result"`` once it stopped."""
        stop = self.tmp / f"stop-{name}"
        stop.unlink(missing_ok=True)
        future: Future[Any] = self.pool.submit(job, *args, str(stop))
        out: dict[str, Any] = {}
        try:
            time.sleep(0.3)
            if future.done():
                future.result()  # raises what went wrong
            yield out
        finally:
            stop.touch()
            out["result"] = future.result(timeout=60)
            stop.unlink(missing_ok=True)

    # -- the floor --------------------------------------------------------------------------

    def floor_rows(self, n: int, figures: dict[str, Any]) -> None:
        """The floor server's rows (measured interleaved with the daemon at size ``n``)."""
        self.rows += [
            Row(f"floor p50 (for {n:,})", figures["latencyUs"]["p50"], "us"),
            Row(f"floor p99 (for {n:,})", figures["latencyUs"]["p99"], "us"),
            Row(
                f"floor throughput, 1 conn (for {n:,})", figures["throughput1"]["perSecond"], "rps"
            ),
            Row(
                f"floor throughput, {self.s.connections} conns (for {n:,})",
                figures["throughputN"]["perSecond"],
                "rps",
            ),
            Row(
                f"floor CPU per request, {self.s.connections} conns (for {n:,})",
                figures["throughputN"]["serverCpuUsPerRequest"],
                "us",
            ),
        ]

    # -- the daemon -------------------------------------------------------------------------

    def settle(self, server: procs.Server, runs: int) -> dict[str, Any]:
        """Wait until the watcher has set up its watches (they may be added after the first
        answer), then 2,000 requests, a short pause, and RSS, threads and inotify watches."""
        watched_s, _ = procs.wait_watches_settled(server, runs)
        client.latency_job(server.socket, STATUS, 2000, 0)
        time.sleep(0.2)
        server.check_alive()
        return {
            **procs.rss_bytes(server.pid),
            "inotifyWatches": procs.inotify_watches(server.pid),
            "threads": procs.thread_count(server.pid),
            "watchesSettledS": watched_s,
        }

    def timed_starts(
        self, home: Path, workspace: Path | None, label: str
    ) -> tuple[procs.Server, list[float]]:
        """One throwaway start (warms the page cache), then ``starts`` timed ones; returns
        the last daemon, still running, and the start times (seconds to first answer)."""
        throwaway = procs.start_daemon(home, workspace, f"{label} (throwaway)")
        # A store the daemon has not checked since its last clean stop (a new tree) is walked
        # once after the first answer: let that end, or every timed start would walk it again.
        procs.wait_stores_checked(throwaway)
        throwaway.stop()
        starts: list[float] = []
        server: procs.Server | None = None
        for k in range(self.s.starts):
            if server is not None:
                server.stop()
            server = procs.start_daemon(home, workspace, f"{label} #{k + 1}")
            assert server.first_answer_s is not None
            starts.append(server.first_answer_s)
        assert server is not None
        return server, starts

    def empty_store(self) -> dict[str, Any]:
        """The daemon serving an empty workspace: start time and RSS baselines."""
        self.log("empty store: daemon start and RSS baseline")
        home = self.tmp / "empty"
        workspace = home / "ws"
        (workspace / ".simpleaide" / "runs").mkdir(mode=0o700, parents=True)
        for folder in (workspace, workspace / ".simpleaide", workspace / ".simpleaide" / "runs"):
            os.chmod(folder, 0o700)
        server, starts = self.timed_starts(home, workspace, "daemon, empty store")
        with procs.running(server):
            resources = self.settle(server, 0)
            self.log("empty store: vault unlock with the default Argon2id cost")
            vault = self.vault_unlock(server)
        figures = {"startS": starts, "resources": resources, "vault": vault}
        self.data["emptyStore"] = figures
        return figures

    def vault_unlock(self, server: procs.Server, rounds: int = 5) -> dict[str, Any]:
        """``vault.unlock`` with the default key-derivation cost (the daemon's defaults),
        against ``vault.status`` on the same connection: the cost a guesser pays per try."""
        passphrase = "benchmark passphrase"

        def call(sock: Any, method: str, **params: Any) -> Any:
            request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
            reply = orjson.loads(client.roundtrip(sock, orjson.dumps(request) + b"\n"))
            assert "result" in reply, reply
            return reply["result"]

        sock = client.connect(server.socket)
        try:
            call(sock, "vault.init", passphrase=passphrase)
            unlock, status = [], []
            for _ in range(rounds):
                call(sock, "vault.lock")
                began = time.perf_counter()
                call(sock, "vault.unlock", passphrase=passphrase)
                unlock.append(time.perf_counter() - began)
                began = time.perf_counter()
                call(sock, "vault.status")
                status.append(time.perf_counter() - began)
        finally:
            sock.close()
        return {
            "unlockS": unlock,
            "statusS": status,
            "unlockMedianS": statistics.median(unlock),
            "statusMedianS": statistics.median(status),
        }

    def size(self, n: int, empty: dict[str, Any], *, time_cli: bool) -> None:
        """Every figure at ``n`` runs on disk."""
        tree = trees.ensure_tree(self.s.cache_root, n, reuse=self.s.reuse_cache)
        if tree.generated_s is not None:
            self.log(f"{n} runs: generated in {tree.generated_s:.1f} s ({tree.workspace})")
        out: dict[str, Any] = {"workspace": str(tree.workspace), "generatedS": tree.generated_s}
        self.data["sizes"][str(n)] = out
        home = self.tmp / f"n{n}"
        home.mkdir(mode=0o700)
        self.log(f"{n} runs: daemon starts")
        server, out["startS"] = self.timed_starts(home, tree.workspace, f"daemon, {n} runs")
        writer_runs: list[int] = []
        try:
            first_runs = server.first_answer.get("result", {}).get("runs", {})
            out["firstAnswerRunsTotal"] = first_runs.get("total")
            out["resources"] = self.settle(server, n)
            self.log(f"{n} runs: idle status.get and the floor server, interleaved")
            with procs.running(procs.start_floor(home)) as floor_server:
                both = self.rpc_figures({"floor": floor_server, "daemon": server})
                out["floor"], out["idle"] = both["floor"], both["daemon"]
                self.log(f"{n} runs: status.get under {self.s.write_rate:.0f} external writes/s")
                both, writer_runs = self.under_writes(server, floor_server, tree)
                out["underWrites"], out["floorUnderWrites"] = both["daemon"], both["floor"]
            self.log(f"{n} runs: external write -> status.get visibility")
            out["visibility"] = self.visibility(server, tree)
            self.log(f"{n} runs: naive scan")
            out["naive"] = self.naive(tree)
            server.check_alive()
            out["resourcesAfter"] = {
                **procs.rss_bytes(server.pid),
                "inotifyWatches": procs.inotify_watches(server.pid),
                "threads": procs.thread_count(server.pid),
            }
            if time_cli:
                self.log("simpleaide status vs python -c pass")
                self.data["cli"] = self.cli(server)
        finally:
            out["stopReturnCode"] = server.stop()
            out["daemonLog"] = str(server.log_path)
            for i in writer_runs:  # the tree is cached: put back what the writer changed
                trees.restore_run(tree, i)
        self.floor_rows(n, out["floor"])
        self.rows_for_size(n, out["floor"], out, empty)

    def under_writes(
        self, server: procs.Server, floor: procs.Server, tree: trees.Tree
    ) -> tuple[dict[str, dict[str, Any]], list[int]]:
        """The idle figures again, of the daemon and of the floor (by name), while a worker
        rewrites ``metadata.json`` files ``write_rate`` times a second (never the newest two
        runs: ``runs.last`` stays put). The floor does not watch the files: its figures show
        what the writing process alone costs the others on this machine."""
        rng = random.Random(tree.n)
        chosen = rng.sample(range(max(0, tree.n - 2)), min(self.s.writer_runs, tree.n - 2))
        cycle = ["running", "completed", "failed", "cancelled"]
        records = [
            (
                trees.run_id(i),
                [
                    trees.run_record(i, status, n=tree.n)
                    for status in cycle[i % 4 :] + cycle[: i % 4]
                ],
            )
            for i in chosen
        ]
        with self.background(
            "writer", client.writer_job, str(tree.runs_dir), records, self.s.write_rate, 1
        ) as writer:
            figures = self.rpc_figures({"daemon": server, "floor": floor})
        figures["daemon"]["writer"] = writer["result"]
        server.check_alive()
        return figures, chosen

    def visibility(self, server: procs.Server, tree: trees.Tree) -> dict[str, Any]:
        """Rewrite the newest run's ``metadata.json`` (status flipping) and time from the
        return of ``os.replace`` until ``status.get``'s ``runs.last.status`` shows it (polled
        back to back on one connection), while another worker hammers ``status.get`` on its
        own connection. A sample not seen within ``visibility_timeout`` is "not observed";
        after ``visibility_give_up`` such misses in a row the measurement stops."""
        i = tree.latest
        rid = trees.run_id(i)
        status = trees.initial_status(i, tree.n)
        seen_ms: list[float] = []
        replace_ms: list[float] = []
        missed = 0
        misses_in_row = 0
        attempted = 0
        wrong_run = 0
        rng = random.Random(7)
        with (
            self.background(
                "hammer", client.hammer_job, server.socket, STATUS, self.s.hammer_connections
            ) as hammer,
            client.connect(server.socket) as probe,
        ):
            for _ in range(self.s.visibility_samples):
                status = "completed" if status == "running" else "running"
                attempted += 1
                before, began = trees.rewrite_run(tree, i, status)
                replace_ms.append((began - before) / 1e6)
                deadline = began + int(self.s.visibility_timeout * 1e9)
                while True:
                    last = orjson.loads(client.roundtrip(probe, STATUS))["result"]["runs"]["last"]
                    now = time.perf_counter_ns()
                    if last and last["id"] == rid and last["status"] == status:
                        seen_ms.append((now - began) / 1e6)
                        misses_in_row = 0
                        break
                    if last and last["id"] != rid:
                        wrong_run += 1
                    if now > deadline:
                        missed += 1
                        misses_in_row += 1
                        break
                if misses_in_row >= self.s.visibility_give_up:
                    break
                time.sleep(rng.uniform(0.005, 0.015))
            trees.restore_run(tree, i)
        return {
            "attempted": attempted,
            "observed": len(seen_ms),
            "notObserved": missed,
            "gaveUp": misses_in_row >= self.s.visibility_give_up,
            "timeoutS": self.s.visibility_timeout,
            "wrongLastRunReplies": wrong_run,
            "latencyMs": summarize(seen_ms),
            "samplesMs": seen_ms,
            "replaceCallMs": summarize(replace_ms),
            "hammer": hammer["result"],
        }

    def naive(self, tree: trees.Tree) -> dict[str, Any]:
        """Time the per-query scan of every ``metadata.json`` (at least ``naive_reps`` times
        and 0.3 s), in this process, with the daemon idle."""
        times: list[float] = []
        result: dict[str, Any] = {}
        spent = 0.0
        while len(times) < self.s.naive_reps or (spent < 0.3 and len(times) < 50):
            began = time.perf_counter()
            result = trees.naive_status(tree.runs_dir)
            times.append(time.perf_counter() - began)
            spent += times[-1]
        return {"seconds": times, "medianS": statistics.median(times), "total": result["total"]}

    def cli(self, server: procs.Server) -> dict[str, Any]:
        """``simpleaide status --format tmux`` (a new process each time) against
        ``python -c pass``, alternating; medians of wall time."""
        cli = str(Path(sys.executable).with_name("simpleaide"))
        env = procs.child_env(self.tmp / "cli")
        status_argv = [cli, "--socket", server.socket, "--no-spawn", "status", "--format", "tmux"]
        pass_argv = [sys.executable, "-c", "pass"]
        status_s, pass_s, output = procs.wall_times(status_argv, pass_argv, env, self.s.cli_pairs)
        return {
            "statusArgv": status_argv,
            "passArgv": pass_argv,
            "statusS": status_s,
            "passS": pass_s,
            "statusMedianS": statistics.median(status_s),
            "passMedianS": statistics.median(pass_s),
            "output": output,
        }

    # -- abuse ------------------------------------------------------------------------------

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
        abuse (DESIGN.md §8: "≤ 3× the floor's p99")."""
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

    # -- the table --------------------------------------------------------------------------

    def rows_for_size(
        self, n: int, floor: dict[str, Any], out: dict[str, Any], empty: dict[str, Any]
    ) -> None:
        """The table rows of size ``n``."""
        conns = self.s.connections
        f_lat, f1, fN = floor["latencyUs"], floor["throughput1"], floor["throughputN"]
        at = f"@{n:,}"
        rows = self.rows
        for label, key, p99_bound in (("idle", "idle", 2.0), ("500 writes/s", "underWrites", 3.0)):
            if key == "underWrites":
                label = f"{out[key]['writer']['perSecond']:.0f} writes/s"
            fig = out[key]
            rows += [
                Row(
                    f"status.get p50, {label} {at}",
                    fig["latencyUs"]["p50"],
                    "us",
                    f_lat["p50"],
                    "≤ 1.5× floor" if key == "idle" else "",
                    ratio_at_most(1.5) if key == "idle" else None,
                ),
                Row(
                    f"status.get p99, {label} {at}",
                    fig["latencyUs"]["p99"],
                    "us",
                    f_lat["p99"],
                    f"≤ {p99_bound:g}× floor",
                    ratio_at_most(p99_bound),
                ),
                Row(
                    f"throughput 1 conn, {label} {at}",
                    fig["throughput1"]["perSecond"],
                    "rps",
                    f1["perSecond"],
                ),
                Row(
                    f"throughput {conns} conns, {label} {at}",
                    fig["throughputN"]["perSecond"],
                    "rps",
                    fN["perSecond"],
                    "≥ 0.5× floor" if key == "idle" else "",
                    ratio_at_least(0.5) if key == "idle" else None,
                ),
                Row(
                    f"daemon CPU per request, {conns} conns, {label} {at}",
                    fig["throughputN"]["serverCpuUsPerRequest"],
                    "us",
                    (fN if key == "idle" else out["floorUnderWrites"]["throughputN"])[
                        "serverCpuUsPerRequest"
                    ],
                ),
            ]
            if key == "underWrites":
                f_busy = out["floorUnderWrites"]["latencyUs"]
                rows += [
                    Row(f"floor p99, same {label} (for {n:,})", f_busy["p99"], "us"),
                    Row(
                        f"status.get p99 vs floor p99, both under {label} {at}",
                        fig["latencyUs"]["p99"],
                        "us",
                        f_busy["p99"],
                    ),
                ]
        naive_us = out["naive"]["medianS"] * 1e6
        idle_p50 = out["idle"]["latencyUs"]["p50"]
        rows.append(
            Row(
                f"naive scan per query / status.get p50 {at}",
                naive_us,
                "us",
                idle_p50,
                "≥ 500×" if n == 10_000 else "",
                ratio_at_least(500) if n == 10_000 else None,
            )
        )
        vis = out["visibility"]
        lat = vis["latencyMs"]
        missing = f"not observed ({vis['notObserved']}/{vis['attempted']})"
        for stat, bound in (("p50", 1.0), ("p99", 5.0), ("max", 50.0)):
            value = lat.get(stat) if vis["observed"] else None
            rows.append(
                Row(
                    f"external write → status.get {stat} {at}",
                    value,
                    "ms",
                    target=f"≤ {bound:g} ms",
                    check=at_most(bound),
                    note=missing,
                )
            )
        rows.append(
            Row(
                f"external writes not seen within {vis['timeoutS']:g} s {at}",
                float(vis["notObserved"]),
                "count",
                target="0 (none lost)",
                check=at_most(0),
                note=f"of {vis['attempted']}",
            )
        )
        start = statistics.median(out["startS"])
        # DESIGN.md §8: ≤ 0.4 s at 10k runs, ≤ 1.5 s at 100k, and ≤ 1.5x an empty store's
        # start at 10k (the ratio carries over between machines, the seconds do not).
        start_bound = {10_000: 0.4, 100_000: 1.5}.get(n)
        seen = out["firstAnswerRunsTotal"]
        partial = "" if seen == n else f" (that answer counted {seen} runs!)"
        rows.append(
            Row(
                f"start → first status.get {at}{partial}",
                start,
                "s",
                statistics.median(empty["startS"]),
                f"≤ {start_bound:g} s" if start_bound else "",
                at_most(start_bound) if start_bound else None,
            )
        )
        if n == 10_000:
            rows.append(
                Row(
                    f"start → first status.get {at} / empty store's",
                    start,
                    "s",
                    statistics.median(empty["startS"]),
                    "≤ 1.5× empty",
                    ratio_at_most(1.5),
                )
            )
        res, res_empty = out["resources"], empty["resources"]
        watches = max(res["inotifyWatches"], out["resourcesAfter"]["inotifyWatches"])
        rows.append(
            Row(
                f"inotify watches {at}",
                float(watches),
                "count",
                float(n),
                f"≤ runs + {WATCH_SLACK}",
                at_most(n + WATCH_SLACK),
                ratio_override=watches / n,
            )
        )
        rows.append(
            Row(
                f"start → watches settled {at}",
                res["watchesSettledS"],
                "s",
                res_empty["watchesSettledS"],
            )
        )
        rss_target = n >= 100_000
        for label, figures in (("settled", res), ("after the load phases", out["resourcesAfter"])):
            rows.append(
                Row(
                    f"RSS, {label} {at}",
                    figures["VmRSS"] / MiB,
                    "MiB",
                    res_empty["VmRSS"] / MiB,
                    "≤ 150 MiB" if rss_target else "",
                    at_most(150) if rss_target else None,
                )
            )
        # Below 10k runs the fixed costs of serving any run dominate the difference.
        per_run_target = n >= 10_000
        rows.append(
            Row(
                f"bytes per indexed run {at}",
                (res["VmRSS"] - res_empty["VmRSS"]) / n,
                "B",
                target="≤ 1024 B" if per_run_target else "(≥ 10k runs only)",
                check=at_most(1024) if per_run_target else None,
            )
        )

    def cli_rows(self) -> None:
        """The ``simpleaide status`` row."""
        cli = self.data.get("cli")
        if cli:
            self.rows.append(
                Row(
                    "`simpleaide status` wall time (median)",
                    cli["statusMedianS"] * 1000,
                    "ms",
                    cli["passMedianS"] * 1000,
                    "≤ 2× python -c pass",
                    ratio_at_most(2.0),
                )
            )

    def empty_rows(self, empty: dict[str, Any]) -> None:
        """The empty-store baseline rows."""
        self.rows += [
            Row("start → first status.get, empty store", statistics.median(empty["startS"]), "s"),
            Row("RSS, empty store", empty["resources"]["VmRSS"] / MiB, "MiB"),
            Row(
                "vault.unlock, default Argon2id (vs vault.status)",
                empty["vault"]["unlockMedianS"] * 1000,
                "ms",
                empty["vault"]["statusMedianS"] * 1000,
                "a noticeable fraction of a second",
            ),
        ]


def _daemon_info(server: procs.Server) -> dict[str, Any]:
    """``daemon.info`` of a running daemon."""
    request = b'{"jsonrpc":"2.0","method":"daemon.info","id":1}\n'
    with client.connect(server.socket) as sock:
        reply: dict[str, Any] = orjson.loads(client.roundtrip(sock, request))
    result: dict[str, Any] = reply.get("result", {})
    return result


def environment() -> dict[str, Any]:
    """Where and on what the benchmark ran."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=procs.REPO, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadAverage": os.getloadavg(),
        "commit": git("rev-parse", "HEAD"),
        "dirtyFiles": len(git("status", "--porcelain").splitlines()),
    }


def run(settings: Settings) -> int:
    """Measure, print the table, write the JSON; returns the exit status (1 if the run
    broke off: what was measured until then is still printed and written)."""
    began = time.monotonic()
    data: dict[str, Any] = {"environment": environment(), "settings": asdict(settings)}
    data["settings"]["cache_root"] = str(settings.cache_root)
    data["settings"]["output"] = str(settings.output)
    data["bytecode"] = procs.compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="sa-bench-", dir="/tmp"))  # short: AF_UNIX paths
    pool = ProcessPoolExecutor(
        max_workers=settings.client_procs + 2, mp_context=get_context("spawn")
    )
    bench = Bench(settings, pool, tmp)
    try:
        bench.warm_workers()
        if "sizes" in settings.only:
            empty = bench.empty_store()
            bench.empty_rows(empty)
            for k, n in enumerate(settings.sizes):
                bench.size(n, empty, time_cli=k == 0)
            bench.cli_rows()
        if "abuse" in settings.only:
            bench.abuse_rows(bench.abuse())
    except Exception as exc:
        data["error"] = f"{type(exc).__name__}: {exc}"
        bench.log(f"broke off: {data['error']}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)
    data.update(bench.data)
    data["rows"] = [row.to_json() for row in bench.rows]
    data["elapsedS"] = time.monotonic() - began
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(bench.rows))
    print()
    byte = data["bytecode"]
    had = "set" if byte["callerHadPythonDontWriteBytecode"] else "unset"
    sizes = len(settings.sizes) if "sizes" in settings.only else 0
    print(
        f"{', '.join(settings.only)}: {sizes} size(s), {data['elapsedS']:.0f} s, "
        f"{data['environment']['cpus']} CPUs, Python {data['environment']['python']}; "
        f"latency with server and client pinned to different CPUs: {settings.pin}; "
        f"bytecode compiled with compileall (exit {byte['returncode']}), children run without "
        f"PYTHONDONTWRITEBYTECODE (it was {had} here)."
    )
    print(f"raw numbers: {settings.output}")
    missed = [row.figure for row in bench.rows if row.ok is False]
    print(f"{len(missed)} target(s) missed" if missed else "every target met")
    if "error" in data:
        print(f"the run broke off: {data['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench``."""
    return run(parse_args(argv))
