"""The benchmark's command line and what it sets: sizes, counts, durations, the scenarios."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from tests.bench import tree as trees

DEFAULT_SIZES = [1000, 10_000, 100_000]
QUICK_SIZES = [1000, 10_000]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
SCENARIOS = ("sizes", "abuse")  # the names of suite.SCENARIOS, in their order
# The abusive clients of the targets (README: Benchmarks).
ABUSE_IDLE, ABUSE_SLOW, ABUSE_FLOOD = 200, 20, 20


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
        description="Benchmark simpleaided against the targets in the README (Benchmarks).",
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
