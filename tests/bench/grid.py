"""``python -m tests.bench grid [--quick]``: the database grid against its targets (README:
Benchmarks).

On a generated table of 1M rows (``--quick``: 100k) in SQLite and in PostgreSQL
(``grid_data.py``), the real daemon is started as a user would, with the table's database as
its DEV database, and measured over its socket:

- **Pages**: ``db.rows`` of 100 rows, the first page and the pages at depth 1 %, 10 % and 90 %
  (10k, 100k and 900k rows in), sorted by the key and by an indexed column. The cursor at a
  depth is reached once by walking ``next`` with pages of 1,000 (not timed); then the page
  after it is fetched again and again with the same cursor. Against, in the same rounds
  (``grid_rivals.py``): the **floor**, the bare driver in this process running the same
  keyset ``SELECT`` with the boundary row's values bound; the same page by **OFFSET** through
  the same driver; and, on the SQLite file, **Datasette**'s JSON API (``_next`` tokens,
  keep-alive), lean (``_nocount``, ``_nofacet``, ``_nosuggest``) and as it serves by default.
  For reference, the bare driver also runs the keyset ``SELECT`` of the bare columns (without
  the daemon's cut-for-display terms).
- **Count**: the first page's ``count`` must be an estimate (the page never waits for an
  exact count); an exact ``count(*)`` in this process is shown beside it.
- **Cancel**: ``db.query`` of a query that never ends, ``db.cancel`` from a second connection
  0.3 s later; the time from sending the cancel to the query's error reply.
- **Export**: ``simpleaide db export`` of the whole table as CSV, in rows/s against
  ``sqlite3 -csv`` and psql's ``\\copy``, with the daemon's RSS sampled meanwhile.

Prints a table per sort (p50 / p99 by depth), the table of targets, and writes every number
to ``tests/bench/results/grid.json``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from simpleaided.domain import grid
from simpleaided.services.database.cells import Reader  # the daemon's select terms
from tests.bench import grid_data, grid_rivals, procs
from tests.bench.client import connect
from tests.bench.report import Row, at_most, ratio_at_most, summarize, table, verdict
from tests.bench.scenario import log

RESULTS = Path(__file__).resolve().parent / "results" / "grid.json"
PAGE = 100
WALK_PAGE = 1000
KEY = "id"
SORTS: dict[str, str | None] = {"key": None, "grp": "grp", "score": "score"}  # label → column
NULLABLE = {"score"}  # as the catalogue tells the daemon; grp and id are NOT NULL
LONG_QUERY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c",
    "postgres": "SELECT pg_sleep(60)",
}
CANCEL_AFTER = 0.3
RSS_GROWTH_MIB = 20.0  # "constant": well below what holding a table's CSV would take
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
MiB = 1024 * 1024


@dataclass
class Settings:
    """How much to measure."""

    rows: int
    quick: bool
    rounds: int  # alternating rounds per page
    samples: int  # per method and round, at most...
    budget: float  # ...and at most this many seconds per method and round
    cancels: int
    postgres: bool
    datasette: bool
    export: bool
    cache_dir: Path
    output: Path

    @property
    def depths(self) -> list[int]:
        """The first page, and the pages at 1 %, 10 % and 90 % of the table (in whole walk
        pages, so a walk lands on them)."""
        out = [0]
        for fraction in (0.01, 0.1, 0.9):
            depth = max(WALK_PAGE, round(self.rows * fraction / WALK_PAGE) * WALK_PAGE)
            if depth < self.rows and depth not in out:
                out.append(depth)
        return out


def parse_args(argv: Sequence[str] | None) -> Settings:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench grid",
        description="Benchmark the database grid (db.rows, db.cancel, db export) against the "
        "bare drivers, OFFSET, Datasette, sqlite3 and psql (README: Benchmarks).",
    )
    parser.add_argument("--quick", action="store_true", help="100k rows, fewer samples")
    parser.add_argument("--rows", type=int, help="rows in the table (default 1M; --quick 100k)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-datasette", action="store_true", help="leave Datasette out")
    parser.add_argument("--no-export", action="store_true", help="leave the export out")
    parser.add_argument("--cache-dir", type=Path, default=grid_data.default_cache_dir())
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    if rows < 10 * WALK_PAGE:
        parser.error(f"--rows: at least {10 * WALK_PAGE}")
    quick = bool(args.quick)
    return Settings(
        rows=rows,
        quick=quick,
        rounds=2 if quick else 3,
        samples=40 if quick else 60,
        budget=0.4 if quick else 1.0,
        cancels=3 if quick else 5,
        postgres=not args.no_postgres,
        datasette=not args.no_datasette,
        export=not args.no_export,
        cache_dir=args.cache_dir,
        output=args.output,
    )


# -- the daemon's socket -------------------------------------------------------------------


class RpcError(Exception):
    """An error reply."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Rpc:
    """One connection to the daemon, a request at a time."""

    def __init__(self, path: str) -> None:
        self.sock = connect(path, timeout=300)
        self.next_id = 0
        self.buffer = b""

    def request(self, method: str, params: dict[str, Any]) -> bytes:
        """The request line."""
        self.next_id += 1
        document = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        return orjson.dumps(document) + b"\n"

    def send(self, method: str, params: dict[str, Any]) -> None:
        """Send without waiting for the reply."""
        self.sock.sendall(self.request(method, params))

    def receive(self) -> bytes:
        """The next reply line."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def raw(self, request: bytes) -> bytes:
        """One round trip of a prepared request line."""
        self.sock.sendall(request)
        return self.receive()

    def call(self, method: str, **params: Any) -> Any:
        """One call; its result, or ``RpcError``."""
        return result(self.raw(self.request(method, params)))

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def result(reply: bytes) -> Any:
    """A reply's result, or ``RpcError``."""
    document = orjson.loads(reply)
    if "error" in document:
        error = document["error"]
        raise RpcError(int(error.get("code", 0)), str(error.get("message")))
    return document["result"]


def start_daemon(home: Path, url: str, name: str) -> procs.Server:
    """The daemon with ``url`` as its DEV database, once its probe says it is connected."""
    config = home / "config" / "simpleaide"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(f'[db.DEV]\nurl = "{url}"\n')
    server = procs.start_daemon(home, None, name=name)
    try:
        rpc = Rpc(server.socket)
        try:
            deadline = time.monotonic() + 60
            while not (status := rpc.call("db.status"))["connected"]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: the database did not connect: {status}")
                time.sleep(0.1)
        finally:
            rpc.close()
    except BaseException:
        server.stop()
        raise
    return server


# -- measuring ----------------------------------------------------------------------------


def timed(fn: Callable[[], Any], count: int, budget: float) -> list[float]:
    """Up to ``count`` calls of ``fn`` within ``budget`` seconds (at least one): each one's
    time in ms."""
    samples: list[float] = []
    clock = time.perf_counter
    stop = clock() + budget
    while len(samples) < count:
        began = clock()
        fn()
        ended = clock()
        samples.append((ended - began) * 1000)
        if ended > stop:
            break
    return samples


def select_list(
    driver: grid_rivals.Driver,
    columns: Sequence[dict[str, str]],
    order: Sequence[grid.SortKey],
    cell_chars: int = 1024,
) -> str:
    """The terms the daemon selects for a page, made by the daemon's own reader (so the floor
    runs the very statement): each column cut for display, the row's note (which rows need
    decoding cell by cell), then the order's columns whole (the page's boundaries)."""
    types = {c["name"]: c["type"] for c in columns}
    reader = Reader(driver.dialect, driver.quote, types)
    return reader.page([c["name"] for c in columns], order, cell_chars).sql


@dataclass
class Engine:
    """One engine under measurement: its daemon, its bare driver, its table."""

    kind: str  # "sqlite" | "postgres"
    server: procs.Server
    driver: grid_rivals.Driver
    table: dict[str, Any]  # db.rows' table (and schema) params
    datasette: grid_rivals.Datasette | None
    socket_floor: procs.Server  # tests.bench.grid_floor on the same table

    @property
    def name(self) -> str:
        """How the table names it."""
        return NAMES[self.kind]


class GridBench:
    """The whole run: rows for the table, data for the JSON."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.s = settings
        self.tmp = tmp
        self.rows: list[Row] = []
        self.matrix: list[str] = []
        self.data: dict[str, Any] = {"pages": {}, "walks": {}, "counts": {}, "cancel": {}}
        self.data["export"] = {}

    # -- pages ----------------------------------------------------------------------------

    def walk(self, engine: Engine, sort: str | None) -> dict[int, tuple[str | None, Any]]:
        """The cursor at each depth and the boundary row's (sort, key) values, walking ``next``
        with pages of 1,000 from the first page (not timed)."""
        depths = self.s.depths
        rpc = Rpc(engine.server.socket)
        out: dict[int, tuple[str | None, Any]] = {0: (None, None)}
        params: dict[str, Any] = {**engine.table, "limit": WALK_PAGE}
        if sort:
            params["sort"] = [{"column": sort}]
        position = 0
        began = time.perf_counter()
        try:
            while position < depths[-1]:
                page = rpc.call("db.rows", **params)
                names = [c["name"] for c in page["columns"]]
                last = page["rows"][-1]
                position += len(page["rows"])
                if page["next"] is None:
                    raise RuntimeError(f"{engine.name}: next is null at row {position}")
                params["after"] = page["next"]
                if position in depths:
                    values = [last[names.index(sort)]] if sort else []
                    out[position] = (page["next"], (*values, last[names.index(KEY)]))
        finally:
            rpc.close()
        seconds = time.perf_counter() - began
        self.data["walks"].setdefault(engine.kind, {})[sort or KEY] = {
            "rows": position,
            "seconds": seconds,
            "rowsPerSecond": position / seconds if seconds else None,
        }
        return out

    def pages(self, engine: Engine, sort: str | None) -> None:
        """Every depth of one sort: the daemon against the floor, OFFSET and Datasette."""
        label = f"{engine.name} · by {sort or KEY}"
        self.log(f"{label}: walking to depth {self.s.depths[-1]:,}")
        cursors = self.walk(engine, sort)
        order = grid.ordering(
            [grid.SortKey(sort, nullable=sort in NULLABLE)] if sort else [], [KEY]
        )
        driver = engine.driver
        results: dict[int, Any] = {}
        for depth in self.s.depths:
            cursor, boundary = cursors[depth]
            self.log(f"{label}: depth {depth:,}")
            results[depth] = self.page(engine, driver, sort, order, depth, cursor, boundary)
        self.data["pages"].setdefault(engine.kind, {})[sort or KEY] = results
        self.add_matrix(label, results)
        for depth, found in results.items():
            where = f"{label} · {'first page' if depth == 0 else f'depth {depth:,}'}"
            same = found["sameRows"]
            note = "" if all(same.values()) else f" (rows differ: {same})"
            daemon, floor = found["daemon"], found["floor"]
            self.rows.append(
                Row(
                    f"{where}: db.rows p50 vs floor{note}",
                    daemon["p50"],
                    "ms",
                    baseline=floor["p50"],
                    target="≤ 2× floor",
                    check=ratio_at_most(2.0),
                )
            )
            self.rows.append(
                Row(
                    f"{where}: db.rows p50 vs the floor over a socket",
                    daemon["p50"],
                    "ms",
                    baseline=found["socketFloor"]["p50"],
                )
            )
            self.rows.append(
                Row(f"{where}: db.rows p50 vs OFFSET", daemon["p50"], "ms", found["offset"]["p50"])
            )
            if "oneStatement" in found:
                self.rows.append(
                    Row(
                        f"{where}: floor in ranges vs the page as one statement (OR)",
                        found["floor"]["p50"],
                        "ms",
                        baseline=found["oneStatement"]["p50"],
                    )
                )
            if "datasetteLean" in found:
                self.rows.append(
                    Row(
                        f"{where}: db.rows p50 vs Datasette (lean JSON)",
                        daemon["p50"],
                        "ms",
                        baseline=found["datasetteLean"]["p50"],
                        target="< Datasette",
                        check=lambda _v, ratio: ratio is not None and ratio < 1.0,
                    )
                )

    def page(
        self,
        engine: Engine,
        driver: grid_rivals.Driver,
        sort: str | None,
        order: Sequence[grid.SortKey],
        depth: int,
        cursor: str | None,
        boundary: Sequence[Any] | None,
    ) -> dict[str, Any]:
        """One page at one depth, every method in alternating rounds."""
        rpc = Rpc(engine.server.socket)
        try:
            params: dict[str, Any] = {**engine.table, "limit": PAGE}
            if sort:
                params["sort"] = [{"column": sort}]
            if cursor is not None:
                params["after"] = cursor
            request = rpc.request("db.rows", params)
            first = result(rpc.raw(request))
            names = [c["name"] for c in first["columns"]]
            select = select_list(driver, first["columns"], order)
            keyset = driver.keyset(order, boundary)  # its parts, run as the daemon runs them
            source = driver.source()
            offset_sql, offset_args = driver.offset(select, order, depth)
            plain = ", ".join(driver.quote(name) for name in names)
            methods: dict[str, Callable[[], Any]] = {
                "daemon": lambda: rpc.raw(request),
                "floor": lambda: keyset.fetch(driver.fetch, select, source),
                "plain": lambda: keyset.fetch(driver.fetch, plain, source),
                "offset": lambda: driver.fetch(offset_sql, offset_args),
            }
            if sort in NULLABLE:  # as the daemon read it before: one statement with an OR
                whole = driver.keyset(order, boundary, split=False)
                methods["oneStatement"] = lambda: whole.fetch(driver.fetch, select, source)
            floor_rpc = Rpc(engine.socket_floor.socket)
            statements = keyset.statements(select, source)
            floor_line = orjson.dumps({"parts": statements, "limit": keyset.limit}) + b"\n"
            methods["socketFloor"] = functools.partial(floor_rpc.raw, floor_line)
            key_at = names.index(KEY)
            ids = {
                "daemon": [row[key_at] for row in first["rows"]],
                "floor": [row[key_at] for row in methods["floor"]()[:PAGE]],
                "offset": [row[key_at] for row in driver.fetch(offset_sql, offset_args)],
            }
            ds = engine.datasette
            if ds is not None and sort not in NULLABLE:  # its _next tokens have no NULL
                table = engine.table["table"]
                token = None if boundary is None else ",".join(str(v) for v in boundary)
                for name, lean in (("datasetteLean", True), ("datasette", False)):
                    path = ds.page_path(table, sort, token, lean)
                    status, body = ds.get(path)
                    if status != 200:
                        raise RuntimeError(f"datasette {path}: HTTP {status}: {body[:300]!r}")
                    doc = orjson.loads(body)
                    ids[name] = [row[doc["columns"].index(KEY)] for row in doc["rows"]]
                    methods[name] = functools.partial(ds.get, path)
            samples: dict[str, list[float]] = {name: [] for name in methods}
            cpu: dict[str, float] = dict.fromkeys(methods, 0.0)  # seconds, summed
            names_order = list(methods)
            socket_rows = orjson.loads(methods["socketFloor"]())
            if not isinstance(socket_rows, list):
                raise RuntimeError(f"the socket floor failed: {socket_rows}")
            ids["socketFloor"] = [row[key_at] for row in socket_rows[:PAGE]]
            if "oneStatement" in methods:
                ids["oneStatement"] = [row[key_at] for row in methods["oneStatement"]()[:PAGE]]
            for name in ("daemon", "floor", "socketFloor", "plain"):  # others ran once, for ids
                for _ in range(6):  # warm: caches; psycopg prepares a statement at its 5th run
                    methods[name]()
            for r in range(self.s.rounds):
                for name in names_order if r % 2 == 0 else names_order[::-1]:
                    if sum(samples[name]) > self.s.rounds * self.s.budget * 1000:
                        continue  # seconds a page (OFFSET deep down): its rounds are spent
                    # CPU, besides wall time: the daemon's process, or this one (the floor
                    # and OFFSET run here); PostgreSQL's own backend is in neither.
                    server = {"daemon": engine.server, "socketFloor": engine.socket_floor}
                    other = server.get(name)
                    before = procs.cpu_seconds(other.pid) if other is not None else 0.0
                    before_here = time.process_time()
                    samples[name] += timed(methods[name], self.s.samples, self.s.budget)
                    if other is not None:
                        cpu[name] += procs.cpu_seconds(other.pid) - before
                    else:
                        cpu[name] += time.process_time() - before_here
        finally:
            rpc.close()
            if "floor_rpc" in locals():
                floor_rpc.close()
        found: dict[str, Any] = {name: summarize(values) for name, values in samples.items()}
        for name, seconds in cpu.items():  # Datasette's is its own process's: not measured
            if not name.startswith("datasette"):
                found[name]["cpuMs"] = seconds * 1000 / len(samples[name])
        found["sameRows"] = {name: ids[name] == ids["floor"] for name in ids}
        found["firstIds"] = {name: values[:3] for name, values in ids.items()}
        found["sql"] = {"keyset": statements, "offset": offset_sql}
        found["plan"] = {
            "keyset": [driver.explain(sql, [*args, keyset.limit]) for sql, args in statements],
            "offset": driver.explain(offset_sql, offset_args),
        }
        if depth == 0:
            found["count"] = first["count"]
        return found

    def add_matrix(self, label: str, results: dict[int, Any]) -> None:
        """A table of p50 / p99 by depth for one sort."""
        depths = list(results)
        header = [label, *("first page" if d == 0 else f"depth {d:,}" for d in depths)]
        methods = [
            ("daemon", "db.rows over the socket"),
            ("floor", "floor: bare driver, same keyset SELECT"),
            ("socketFloor", "floor over a socket: a bare server, same SELECT"),
            ("plain", "bare driver, keyset SELECT of the bare columns"),
            ("offset", "same driver, LIMIT 100 OFFSET depth"),
            ("oneStatement", "same driver, the page as one statement (OR)"),
            ("datasetteLean", "Datasette JSON, _nocount _nofacet _nosuggest"),
            ("datasette", "Datasette JSON as served"),
        ]
        lines = [header]
        for key, words in methods:
            if key not in results[depths[0]]:
                continue
            cells = [words]
            for d in depths:
                s = results[d][key]
                cells.append(f"{s['p50']:.2f} / {s['p99']:.2f} ms")
            lines.append(cells)
        for key, words in (
            ("daemon", "CPU per page: the daemon process"),
            ("floor", "CPU per page: the floor (this process)"),
            ("socketFloor", "CPU per page: the floor server's process"),
        ):
            cells = [words]
            for d in depths:
                cpu_ms = results[d][key].get("cpuMs")
                cells.append("–" if cpu_ms is None else f"{cpu_ms:.2f} ms")
            lines.append(cells)
        widths = [max(len(line[k]) for line in lines) for k in range(len(header))]

        def fmt_line(parts: list[str]) -> str:
            return "| " + " | ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        self.matrix.append("\n".join([fmt_line(lines[0]), rule, *map(fmt_line, lines[1:])]))

    # -- count, cancel, export ---------------------------------------------------------------

    def count(self, engine: Engine) -> None:
        """The first page's count against an exact ``count(*)`` in this process."""
        first = self.data["pages"][engine.kind][KEY][0]
        counted = engine.driver.fetch(f"SELECT count(*) FROM {engine.driver.source()}", ())
        exact_ms = timed(
            lambda: engine.driver.fetch(f"SELECT count(*) FROM {engine.driver.source()}", ()),
            5,
            2.0,
        )
        count = first["count"]
        self.data["counts"][engine.kind] = {
            "firstPage": count,
            "exactCountMs": summarize(exact_ms),
            "exactCount": counted[0][0],
        }
        est = count.get("value")
        exact = bool(count.get("exact"))
        self.rows.append(
            Row(
                f"{engine.name} · first page p50 vs exact count(*) (count {est:,} "
                f"{'exact' if exact else 'estimated'})"
                if isinstance(est, int)
                else f"{engine.name} · first page p50 vs exact count(*) (count {count})",
                first["daemon"]["p50"],
                "ms",
                baseline=summarize(exact_ms)["p50"],
                target="estimated (exact: false)",
                check=functools.partial(_estimated, exact),
            )
        )

    def cancel(self, engine: Engine) -> None:
        """``db.cancel`` of a query that never ends, from a second connection."""
        runner, canceller = Rpc(engine.server.socket), Rpc(engine.server.socket)
        seconds: list[float] = []
        outcomes: list[Any] = []
        try:
            for k in range(self.s.cancels):
                query_id = f"bench-cancel-{k}"
                runner.send(
                    "db.query",
                    {"sql": LONG_QUERY[engine.kind], "queryId": query_id, "timeoutMs": 60_000},
                )
                time.sleep(CANCEL_AFTER)
                began = time.perf_counter()
                answer = canceller.call("db.cancel", queryId=query_id)
                reply = runner.receive()
                seconds.append(time.perf_counter() - began)
                error = orjson.loads(reply).get("error")
                outcomes.append({"cancel": answer, "error": error})
        finally:
            runner.close()
            canceller.close()
        self.data["cancel"][engine.kind] = {"seconds": summarize(seconds), "outcomes": outcomes}
        right = all(
            o["cancel"].get("cancelled") and (o["error"] or {}).get("code") == -32800
            for o in outcomes
        )
        self.rows.append(
            Row(
                f"{engine.name} · cancel → error reply, worst of {len(seconds)}"
                + ("" if right else f" (replies: {outcomes[-1]})"),
                max(seconds) * 1000,
                "ms",
                target="≤ 500 ms",
                check=functools.partial(_right_and_within, right, 500.0),
            )
        )

    def export(self, engine: Engine) -> None:
        """The whole table as CSV through the daemon, against the engine's own CSV output;
        the daemon's RSS sampled meanwhile."""
        out = self.tmp / f"export-{engine.kind}.csv"
        rss: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss.append(procs.rss_bytes(engine.server.pid)["VmRSS"])
                done.wait(0.02)

        cli = export_cli(engine, out)
        sampler = threading.Thread(target=sample, daemon=True)
        self.log(f"{engine.name}: export ({'simpleaide db export' if cli else 'paging db.rows'})")
        start_rss = procs.rss_bytes(engine.server.pid)["VmRSS"]
        sampler.start()
        daemon_cpu = procs.cpu_seconds(engine.server.pid)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        here = time.process_time()
        began = time.perf_counter()
        try:
            if cli:
                done_cli = subprocess.run(
                    cli, capture_output=True, check=False, env=procs.child_env(self.tmp / "cli")
                )
                if done_cli.returncode != 0:
                    raise RuntimeError(f"{cli} exited {done_cli.returncode}: {done_cli.stderr!r}")
            else:
                export_by_paging(engine, out)
            seconds = time.perf_counter() - began
            daemon_cpu = procs.cpu_seconds(engine.server.pid) - daemon_cpu
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
            client_cpu += 0.0 if cli else time.process_time() - here
        finally:
            done.set()
            sampler.join()
        end_rss = procs.rss_bytes(engine.server.pid)["VmRSS"]
        with out.open("rb") as f:
            lines = sum(1 for _ in f)
        out.unlink()
        own = self.tmp / f"own-{engine.kind}.csv"
        if engine.kind == "sqlite":
            own_seconds, own_name = (
                grid_rivals.sqlite_csv(engine.driver.tables, own),
                "sqlite3 -csv",
            )
        else:
            own_seconds, own_name = grid_rivals.psql_csv(engine.driver.tables, own), "psql \\copy"
        with own.open("rb") as f:
            own_lines = sum(1 for _ in f)
        own.unlink()
        n = self.s.rows
        peak = max([start_rss, *rss, end_rss])
        self.data["export"][engine.kind] = {
            "how": "simpleaide db export" if cli else "db.rows pages of 1000 written as CSV here",
            "command": cli,
            "seconds": seconds,
            "rowsPerSecond": n / seconds,
            "lines": lines,
            "own": {"how": own_name, "seconds": own_seconds, "rowsPerSecond": n / own_seconds},
            "ownLines": own_lines,
            "rssBytes": {"start": start_rss, "peak": peak, "end": end_rss, "samples": len(rss)},
            "cpuSeconds": {"daemon": daemon_cpu, "client": client_cpu},
        }
        how = "db export" if cli else "db.rows pages (no CLI yet)"
        self.rows.append(
            Row(
                f"{engine.name} · {how} CSV, rows/s vs {own_name} ({lines:,} lines; CPU s: "
                f"daemon {daemon_cpu:.1f}, client {client_cpu:.1f})",
                n / seconds,
                "count",
                baseline=n / own_seconds,
            )
        )
        self.rows.append(
            Row(
                f"{engine.name} · daemon RSS growth during the export "
                f"({start_rss / MiB:.0f} → peak {peak / MiB:.0f} → end {end_rss / MiB:.0f} MiB)",
                (peak - start_rss) / MiB,
                "MiB",
                target=f"≤ {RSS_GROWTH_MIB:.0f} MiB (constant)",
                check=at_most(RSS_GROWTH_MIB),
            )
        )

    # -- the run -------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        """Progress on stderr."""
        log(message)

    def engine(self, kind: str, tables: grid_data.Tables) -> None:
        """Everything on one engine, with its own daemon."""
        home = self.tmp / kind
        home.mkdir()
        url = str(tables.sqlite_path) if kind == "sqlite" else tables.pg_url
        self.log(f"{NAMES[kind]}: starting the daemon")
        server = start_daemon(home, url, f"daemon-{kind}")
        datasette: grid_rivals.Datasette | None = None
        driver: grid_rivals.Driver | None = None
        socket_floor: procs.Server | None = None
        try:
            socket_floor = procs.start_grid_floor(home, kind, url)
            if kind == "sqlite":
                driver = grid_rivals.SqliteDriver(tables)
                table: dict[str, Any] = {"table": tables.sqlite_table}
                if self.s.datasette:
                    datasette = grid_rivals.Datasette(tables.sqlite_path, home / "datasette.log")
            else:
                driver = grid_rivals.PostgresDriver(tables)
                table = {"table": tables.pg_table, "schema": tables.pg_schema}
            engine = Engine(kind, server, driver, table, datasette, socket_floor)
            for sort in SORTS.values():
                self.pages(engine, sort)
            self.count(engine)
            self.log(f"{engine.name}: cancel")
            self.cancel(engine)
            if self.s.export:
                self.export(engine)
        finally:
            if datasette is not None:
                datasette.stop()
            if driver is not None:
                driver.close()
            if socket_floor is not None:
                socket_floor.stop()
            server.stop()


def _estimated(exact: bool, _value: float | None, _ratio: float | None) -> bool:
    return not exact


def _right_and_within(right: bool, bound: float, value: float | None, _ratio: float | None) -> bool:
    return right and value is not None and value <= bound


def export_cli(engine: Engine, out: Path) -> list[str] | None:
    """``simpleaide db export`` for the engine's table, if the CLI has the command."""
    program = str(Path(sys.executable).parent / "simpleaide")
    base = [program, "--socket", engine.server.socket, "--no-spawn", "db", "export"]
    probe = subprocess.run([*base, "--help"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return None
    argv = [*base, engine.table["table"], "--format", "csv", "-o", str(out)]
    if "schema" in engine.table and "--schema" in probe.stdout:
        argv += ["--schema", engine.table["schema"]]
    return argv


def export_by_paging(engine: Engine, out: Path) -> None:
    """What ``simpleaide db export`` does, in this process: ``db.rows`` pages of 1,000
    written as CSV (a header, then the rows; NULL as an empty field)."""
    rpc = Rpc(engine.server.socket)
    params: dict[str, Any] = {**engine.table, "limit": WALK_PAGE}
    try:
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            header = False
            while True:
                page = rpc.call("db.rows", **params)
                if not header:
                    writer.writerow([c["name"] for c in page["columns"]])
                    header = True
                writer.writerows(page["rows"])
                if page["next"] is None:
                    break
                params["after"] = page["next"]
    finally:
        rpc.close()


def run(settings: Settings) -> int:
    """Measure, print, write the JSON; the exit status (1 if the run broke off)."""
    from tests.bench.suite import environment  # the suite's imports only when run

    began = time.monotonic()
    data: dict[str, Any] = {"environment": environment(), "settings": asdict(settings)}
    data["settings"].update(
        cache_dir=str(settings.cache_dir), output=str(settings.output), depths=settings.depths
    )
    data["bytecode"] = procs.compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="sa-grid-", dir="/tmp"))  # short: AF_UNIX paths
    bench = GridBench(settings, tmp)
    try:
        tables = grid_data.ensure(
            settings.cache_dir, settings.rows, log, postgres=settings.postgres
        )
        data["tables"] = asdict(tables) | {"sqlite_path": str(tables.sqlite_path)}
        kinds = ["sqlite"]
        if tables.pg_table is not None:
            kinds.append("postgres")
        else:
            log(f"PostgreSQL left out: {tables.pg_error}")
        for kind in kinds:
            bench.engine(kind, tables)
    except Exception as exc:
        data["error"] = f"{type(exc).__name__}: {exc}"
        log(f"broke off: {data['error']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data.update(bench.data)
    data["rows"] = [row.to_json() for row in bench.rows]
    data["elapsedS"] = time.monotonic() - began
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    )
    for matrix in bench.matrix:
        print(matrix)
        print()
    print(table(bench.rows))
    print()
    print(
        f"grid: {settings.rows:,} rows, {data['elapsedS']:.0f} s, "
        f"{data['environment']['cpus']} CPUs, Python {data['environment']['python']}; "
        "page times are p50 / p99 of the round trip (socket, HTTP) or of execute + fetchall "
        "(floor, OFFSET)."
    )
    return verdict(bench.rows, data, settings.output)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.bench grid``."""
    return run(parse_args(argv))
