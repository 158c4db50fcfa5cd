"""The benchmark run: every target figure (README: Benchmarks), each against a baseline
measured in the same run (the machines are noisy), printed as a table and written as JSON.

The scenarios, each runnable alone (``--only``): ``sizes`` (``sizes.py``) and ``abuse``
(``abuse.py``); what they measure with is in ``scenario.py``, the command line in
``settings.py``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from tests.bench import procs
from tests.bench.abuse import Abuse
from tests.bench.report import Row, table, verdict
from tests.bench.scenario import Scenario, log, warm_workers
from tests.bench.settings import SCENARIOS as SCENARIO_NAMES
from tests.bench.settings import Settings, parse_args
from tests.bench.sizes import Sizes

SCENARIOS: list[type[Scenario]] = [Sizes, Abuse]
assert tuple(s.name for s in SCENARIOS) == SCENARIO_NAMES


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
    rows: list[Row] = []
    measured: dict[str, Any] = {"sizes": {}}
    try:
        warm_workers(pool, settings)
        for scenario in SCENARIOS:  # in this order, whatever the order of --only
            if scenario.name in settings.only:
                scenario(settings, pool, tmp, rows, measured).run()
    except Exception as exc:
        data["error"] = f"{type(exc).__name__}: {exc}"
        log(f"broke off: {data['error']}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)
    data.update(measured)
    data["rows"] = [row.to_json() for row in rows]
    data["elapsedS"] = time.monotonic() - began
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(rows))
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
    return verdict(rows, data, settings.output)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench``."""
    return run(parse_args(argv))
