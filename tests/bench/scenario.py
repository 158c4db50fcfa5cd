"""What every scenario of the benchmark run shares: the worker processes, the temporary
folder, the table's rows and the JSON's data, and the measurements of a server they all make
(latency, throughput, both alternating between servers, a job in the background)."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.bench import client, procs
from tests.bench.report import Row, summarize
from tests.bench.settings import Settings

STATUS = client.STATUS_REQUEST


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def warm_workers(pool: ProcessPoolExecutor, settings: Settings) -> None:
    """Start every worker process now, not in the middle of a measurement."""
    jobs = [pool.submit(time.sleep, 0.3) for _ in range(settings.client_procs + 2)]
    for job in jobs:
        job.result()


class Scenario:
    """One scenario of a benchmark run (``name`` for ``--only``): it measures with the run's
    worker processes and adds its rows and data to the run's."""

    name = ""

    def __init__(
        self,
        settings: Settings,
        pool: ProcessPoolExecutor,
        tmp: Path,
        rows: list[Row],
        data: dict[str, Any],
    ) -> None:
        self.s = settings
        self.pool = pool
        self.tmp = tmp
        self.rows = rows
        self.data = data

    def run(self) -> None:
        """Measure, adding rows to ``rows`` and figures to ``data``."""
        raise NotImplementedError

    def log(self, message: str) -> None:
        """Progress on stderr (the table goes to stdout)."""
        log(message)

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
