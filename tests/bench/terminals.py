"""``python -m tests.bench terminals [--quick] [--only STEPS]``: the terminals against
README: Benchmarks.

The daemon is started as a user would (``python -m simpleaided --socket ... --http
127.0.0.1:0``, an isolated HOME), its console's address and token taken with ``http.open``
(as ``simpleaide open`` does); terminado serves the same programs from a tornado process of
its own, and so does a bare relay (``terminals_rivals.py``). This process is the client of
all of them, and the floor.

- **Throughput** (``throughput``): ``cat`` of a 100 MB file of text lines (``--quick``:
  20 MB), from the line typed that starts it to the last byte received, to a client attached
  over the Unix socket and over the console's WebSocket (each acknowledging as the protocol
  requires, decoding the base64), against the floor, a bare PTY read loop in this process,
  and terminado's WebSocket; the bare relay for reference. Rounds alternate them, each round
  in another order; the median of the rounds is shown, with the CPU seconds of the serving
  process (from ``/proc``), of this one as the client, and of ``cat`` (as reaped children).
- **Echo** (``echo``): single keys typed into a raw-mode ``cat``, each echo waited for (and
  the input's reply, before the next key), p50 / p99 over the socket and the WebSocket,
  against the same program on a bare PTY written and read in this process (floor) and
  through terminado; the bare relay for reference.
- **Ctrl-C** (``ctrl-c``): in an interactive bash, ``yes`` and ``cat`` of the file flooding
  an acknowledging socket client; then ``\\x03`` typed; the time to the prompt's marker.
- **Re-attach** (``attach``): a terminal whose 2 MiB scrollback is full, attached from a new
  connection again and again: the time from sending ``terminals.attach`` to the reply (which
  carries the replay) received whole.

Prints the table of targets and writes every number to ``tests/bench/results/terminals.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.bench import procs
from tests.bench import terminals_clients as clients
from tests.bench import terminals_rivals as rivals
from tests.bench.report import (
    Row,
    at_most,
    percentile,
    ratio_at_least,
    ratio_at_most,
    summarize,
    table,
    verdict,
)
from tests.bench.scenario import log

RESULTS = Path(__file__).resolve().parent / "results" / "terminals.json"
MB = 1_000_000
PROMPT = b"@@prompt@@"  # the bash prompt's marker, which no flood prints
FLOOD_BEFORE_CTRL_C = 1 << 20  # output received before Ctrl-C: the flood is in full swing
FILL_BYTES = 3_000_000  # printed into the re-attached terminal: more than its 2 MiB ring
WARMUP_KEYS = 20
CONTENDERS = ("floor", "relay", "socket", "websocket", "terminado")
STEPS = ("throughput", "echo", "ctrl-c", "attach")
NAMES = {
    "floor": "bare PTY (floor)",
    "relay": "bare relay process (reference)",
    "socket": "daemon, socket",
    "websocket": "daemon, WebSocket",
    "terminado": "terminado",
}


@dataclass
class Settings:
    """How much to measure."""

    quick: bool
    file_bytes: int
    rounds: int  # throughput: each contender this many times, alternating
    keys: int  # echo: keys per contender, over all rounds
    key_rounds: int
    ctrl_c: int  # repetitions per flood program
    attaches: int
    terminado: bool
    only: tuple[str, ...]
    output: Path


def parse_args(argv: Sequence[str] | None) -> Settings:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench terminals",
        description="Benchmark the daemon's terminals (output throughput, keystroke echo, "
        "Ctrl-C under a flood, re-attach) against a bare PTY and terminado (README: Benchmarks).",
    )
    parser.add_argument("--quick", action="store_true", help="a 20 MB file, fewer samples")
    parser.add_argument("--mb", type=int, help="the flood file's size in MB (default 100)")
    parser.add_argument("--keys", type=int, help="keystrokes per contender (default 500)")
    parser.add_argument("--no-terminado", action="store_true", help="leave terminado out")
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"comma-separated steps to run, of {', '.join(STEPS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    only = tuple(step for step in args.only.split(",") if step)
    if unknown := set(only) - set(STEPS):
        parser.error(f"--only: no step {', '.join(sorted(unknown))}")
    return Settings(
        quick=quick,
        file_bytes=(args.mb or (20 if quick else 100)) * MB,
        rounds=1 if quick else 5,
        keys=args.keys or (200 if quick else 500),
        key_rounds=2 if quick else 5,
        ctrl_c=3 if quick else 5,
        attaches=10 if quick else 30,
        terminado=not args.no_terminado,
        only=only,
        output=args.output,
    )


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by ``pid``, and by the children it reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own, children = fields[11:13], fields[13:15]
    return sum(int(x) for x in own) / tick, sum(int(x) for x in children) / tick


def write_flood_file(path: Path, size: int) -> None:
    """``size`` bytes (give or take a line) of numbered text lines."""
    block = b"".join(
        b"%07d the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmn\n" % n
        for n in range(1000)
    )
    with path.open("wb") as f:
        for _ in range(max(1, round(size / len(block)))):
            f.write(block)


class TerminalsBench:
    """The whole run: the servers, the rows for the table, the data for the JSON."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.s = settings
        self.tmp = tmp
        self.file = tmp / "flood.txt"
        self.rows: list[Row] = []
        self.data: dict[str, Any] = {}
        self.daemon: procs.Server | None = None
        self.terminado: rivals.Terminado | None = None
        self.relay: rivals.Relay | None = None
        self.url = ""
        self.token = ""

    # -- the servers ----------------------------------------------------------------------

    def start(self) -> None:
        """The flood file, the daemon with its HTTP shim, the bare relay, terminado."""
        log(f"writing {self.s.file_bytes / MB:.0f} MB of text lines")
        write_flood_file(self.file, self.s.file_bytes)
        self.data["fileBytes"] = self.file.stat().st_size
        home = self.tmp / "home"
        home.mkdir()
        self.daemon = procs.start_daemon(home, None, extra_args=["--http", "127.0.0.1:0"])
        client = clients.SocketClient(self.daemon.socket)
        try:
            opened = client.call("http.open")
        finally:
            client.close()
        self.url, self.token = opened["url"], opened["token"]
        self.relay = rivals.Relay(str(self.tmp / "relay.sock"), self.tmp / "relay.log")
        if self.s.terminado:
            self.terminado = rivals.Terminado(self.file, self.tmp / "terminado.log")

    def stop(self) -> None:
        """Stop what was started."""
        if self.relay is not None:
            self.relay.stop()
        if self.terminado is not None:
            self.terminado.stop()
        if self.daemon is not None:
            self.daemon.stop()

    @property
    def socket(self) -> str:
        """The daemon's socket."""
        assert self.daemon is not None
        return self.daemon.socket

    def contenders(self) -> list[str]:
        """Who is measured (terminado, unless left out)."""
        return [c for c in CONTENDERS if c != "terminado" or self.terminado is not None]

    def cpu(self, contender: str) -> tuple[float, float, float]:
        """CPU seconds used so far by the process serving ``contender`` (this one for the
        floor: its read loop), by this one as its client, and by the programs it reaped."""
        if contender == "floor":
            mine = resource.getrusage(resource.RUSAGE_CHILDREN)
            return time.process_time(), 0.0, mine.ru_utime + mine.ru_stime
        server = {"terminado": self.terminado, "relay": self.relay}.get(contender, self.daemon)
        assert server is not None
        served, programs = cpu_seconds(server.pid)
        return served, time.process_time(), programs

    # -- throughput -----------------------------------------------------------------------

    def flood_once(self, contender: str) -> tuple[float, int, int]:
        """One ``cat`` of the file to ``contender``: seconds, bytes received, messages."""
        if contender == "floor":
            return rivals.floor_flood(self.file)
        if contender == "relay":
            assert self.relay is not None
            return rivals.relay_flood(self.relay.path, self.file)
        if contender == "socket":
            client = clients.SocketClient(self.socket)
            try:
                created = client.call("terminals.create", argv=rivals.flood_argv(self.file))
                try:
                    return clients.socket_flood(client, created["id"])
                finally:
                    client.call("terminals.kill", id=created["id"], remove=True)
            finally:
                client.close()
        if contender == "websocket":
            return asyncio.run(self._ws_flood())
        return asyncio.run(self._terminado_flood())

    async def _ws_flood(self) -> tuple[float, int, int]:
        async with clients.ws_connect(self.url, self.token) as ws:
            client = clients.WsClient(ws)
            created = await client.call("terminals.create", argv=rivals.flood_argv(self.file))
            try:
                return await clients.ws_flood(client, created["id"])
            finally:
                await client.call("terminals.kill", id=created["id"], remove=True)

    async def _terminado_flood(self) -> tuple[float, int, int]:
        assert self.terminado is not None
        url = self.terminado.url("flood")
        async with clients.terminado_connect(url, self.terminado.origin) as ws:
            return await clients.terminado_flood(ws)

    def throughput(self) -> None:
        """Rounds of the floods, each round in another order."""
        runs: dict[str, list[dict[str, float]]] = {c: [] for c in self.contenders()}
        order = self.contenders()
        for round_ in range(self.s.rounds):
            for contender in order[round_ % len(order) :] + order[: round_ % len(order)]:
                before = self.cpu(contender)
                seconds, received, messages = self.flood_once(contender)
                server, client, program = (
                    b - a for a, b in zip(before, self.cpu(contender), strict=True)
                )
                mb_per_s = self.data["fileBytes"] / seconds / MB
                runs[contender].append(
                    {
                        "seconds": seconds,
                        "bytes": received,
                        "messages": messages,
                        "MBps": mb_per_s,
                        "serverCpu": server,
                        "clientCpu": client,
                        "programCpu": program,
                    }
                )
                log(
                    f"throughput, {NAMES[contender]}: {mb_per_s:.1f} MB/s ({received:,} bytes "
                    f"in {seconds:.2f} s, {messages:,} messages; CPU s: server {server:.2f}, "
                    f"client {client:.2f}, cat {program:.2f})"
                )
        self.data["throughput"] = runs
        median = {c: statistics.median(r["MBps"] for r in runs[c]) for c in runs}
        cpu = {c: statistics.median(r["serverCpu"] for r in runs[c]) for c in runs}
        size = f"cat of {self.data['fileBytes'] / MB:.0f} MB"
        for contender in ("floor", "relay", "terminado"):
            if contender in median:
                name = "bare PTY read loop (floor)" if contender == "floor" else NAMES[contender]
                self.rows.append(Row(f"throughput, {size}: {name}", median[contender], "MBps"))
        for contender in ("socket", "websocket"):
            name = f"throughput, {size}: {NAMES[contender]}"
            value = median[contender]
            self.rows.append(
                Row(
                    f"{name} / floor",
                    value,
                    "MBps",
                    baseline=median["floor"],
                    target="≥ 0.5× floor",
                    check=ratio_at_least(0.5),
                )
            )
            if "terminado" in median:
                self.rows.append(
                    Row(
                        f"{name} / terminado",
                        value,
                        "MBps",
                        baseline=median["terminado"],
                        target="≥ terminado",
                        check=ratio_at_least(1.0),
                    )
                )
        for contender in ("relay", "socket", "websocket", "terminado"):
            if contender in cpu:
                self.rows.append(
                    Row(
                        f"server CPU per {size}: {NAMES[contender]} / the floor's read loop",
                        cpu[contender],
                        "s",
                        baseline=cpu["floor"],
                    )
                )

    # -- echo -----------------------------------------------------------------------------

    def echo_once(self, contender: str, count: int) -> list[float]:
        """``count`` keystrokes through ``contender``, a new terminal (and warm-up)."""
        keys = [rivals.KEYS[k % len(rivals.KEYS)] for k in range(count)]
        if contender == "floor":
            return rivals.floor_echo(count, WARMUP_KEYS)
        if contender == "relay":
            assert self.relay is not None
            return rivals.relay_echo(self.relay.path, count, WARMUP_KEYS)
        if contender == "socket":
            client = clients.SocketClient(self.socket)
            try:
                created = client.call("terminals.create", argv=rivals.echo_argv())
                try:
                    return clients.socket_echo(client, created["id"], keys, WARMUP_KEYS)
                finally:
                    client.call("terminals.kill", id=created["id"], remove=True)
            finally:
                client.close()
        if contender == "websocket":
            return asyncio.run(self._ws_echo(keys))
        return asyncio.run(self._terminado_echo(keys))

    async def _ws_echo(self, keys: list[bytes]) -> list[float]:
        async with clients.ws_connect(self.url, self.token) as ws:
            client = clients.WsClient(ws)
            created = await client.call("terminals.create", argv=rivals.echo_argv())
            try:
                return await clients.ws_echo(client, created["id"], keys, WARMUP_KEYS)
            finally:
                await client.call("terminals.kill", id=created["id"], remove=True)

    async def _terminado_echo(self, keys: list[bytes]) -> list[float]:
        assert self.terminado is not None
        url = self.terminado.url("echo")
        async with clients.terminado_connect(url, self.terminado.origin) as ws:
            return await clients.terminado_echo(ws, keys, WARMUP_KEYS)

    def echo(self) -> None:
        """Rounds of keystrokes through each, each round in another order."""
        samples: dict[str, list[float]] = {c: [] for c in self.contenders()}
        order = self.contenders()
        per_round = max(1, self.s.keys // self.s.key_rounds)
        for round_ in range(self.s.key_rounds):
            for contender in order[round_ % len(order) :] + order[: round_ % len(order)]:
                samples[contender] += self.echo_once(contender, per_round)
        self.data["echoUs"] = {c: summarize(v) for c, v in samples.items()}
        p50 = {c: percentile(sorted(v), 0.50) for c, v in samples.items()}
        p99 = {c: percentile(sorted(v), 0.99) for c, v in samples.items()}
        for contender in samples:
            figures = f"p50 {p50[contender]:.0f} µs, p99 {p99[contender]:.0f} µs"
            log(f"echo, {NAMES[contender]}: {figures}")
        count = len(samples["floor"])
        for q, values in (("p50", p50), ("p99", p99)):
            self.rows.append(
                Row(f"echo {q} ({count} keys): bare PTY (floor)", values["floor"], "us")
            )
            for contender in ("relay", "terminado"):
                if contender in values:
                    name = f"echo {q}: {NAMES[contender]}"
                    self.rows.append(Row(name, values[contender], "us"))
        for contender in ("socket", "websocket"):
            for q, values, bound in (("p50", p50, 2.0), ("p99", p99, 3.0)):
                name = f"echo {q}: {NAMES[contender]}"
                self.rows.append(
                    Row(
                        f"{name} / floor",
                        values[contender],
                        "us",
                        baseline=values["floor"],
                        target=f"≤ {bound:.0f}× floor",
                        check=ratio_at_most(bound),
                    )
                )
                if "terminado" in values:
                    self.rows.append(
                        Row(
                            f"{name} / terminado",
                            values[contender],
                            "us",
                            baseline=values["terminado"],
                            target="≤ terminado",
                            check=ratio_at_most(1.0),
                        )
                    )

    # -- Ctrl-C ---------------------------------------------------------------------------

    def ctrl_c(self) -> None:
        """In one bash, each flood program started, Ctrl-C typed once it is in full swing:
        the time from sending it to the next prompt received."""
        floods = {"yes": b"yes", "cat": b"cat " + str(self.file).encode()}
        times: dict[str, list[float]] = {name: [] for name in floods}
        client = clients.SocketClient(self.socket)
        try:
            created = client.call(
                "terminals.create",
                argv=["bash", "--norc", "--noprofile", "-i"],
                env={"PS1": PROMPT.decode() + " ", "HISTFILE": "/dev/null"},
            )
            terminal = created["id"]
            tracker = client.attach(terminal)
            client.until(terminal, tracker, lambda t: PROMPT in t.tail)
            for _ in range(self.s.ctrl_c):
                for name, command in floods.items():
                    client.type(terminal, command + b"\r")
                    flowing = tracker.received + FLOOD_BEFORE_CTRL_C
                    while tracker.received < flowing:
                        client.take(terminal, tracker, keep=0)
                    tracker.tail = b""
                    began = time.perf_counter()
                    client.type(terminal, b"\x03")
                    client.until(terminal, tracker, lambda t: PROMPT in t.tail)
                    times[name].append((tracker.last_at - began) * 1000)
            client.call("terminals.kill", id=terminal, signal="KILL", remove=True)
        finally:
            client.close()
        self.data["ctrlCMs"] = times
        for name, values in times.items():
            log(f"Ctrl-C under {name}: {', '.join(f'{v:.0f}' for v in values)} ms")
            flood = f"Ctrl-C → prompt, `{floods[name].decode().split()[0]}` flooding"
            self.rows.append(
                Row(
                    f"{flood}, median of {len(values)}",
                    statistics.median(values),
                    "ms",
                    target="≤ 250 ms",
                    check=at_most(250),
                )
            )
            self.rows.append(
                Row(
                    f"{flood}, worst of {len(values)}",
                    max(values),
                    "ms",
                    target="≤ 250 ms",
                    check=at_most(250),
                )
            )

    # -- re-attach ------------------------------------------------------------------------

    def reattach(self) -> None:
        """A terminal's ring filled (3 MB printed), then attached from a new connection
        each time: the request sent to the reply received whole (and, apart, decoded)."""
        argv = [
            "sh",
            "-c",
            f'head -c {FILL_BYTES} "$0" && printf FILLED && exec cat',
            str(self.file),
        ]
        first = clients.SocketClient(self.socket)
        try:
            terminal = first.call("terminals.create", argv=argv)["id"]
            tracker = first.attach(terminal)
            first.until(terminal, tracker, lambda t: b"FILLED" in t.tail)
        finally:
            first.close()
        received: list[float] = []
        decoded: list[float] = []
        replay_bytes = 0
        clock = time.perf_counter
        for _ in range(self.s.attaches):
            client = clients.SocketClient(self.socket)
            try:
                request = {"jsonrpc": "2.0", "id": 1, "method": "terminals.attach"}
                request["params"] = {"id": terminal, "cols": 80, "rows": 24}
                line = orjson.dumps(request) + b"\n"
                began = clock()
                client.sock.sendall(line)
                reply = client.receive_line()
                got = clock()
                replay = binascii.a2b_base64(orjson.loads(reply)["result"]["replay"])
                done = clock()
            finally:
                client.close()
            received.append((got - began) * 1000)
            decoded.append((done - got) * 1000)
            replay_bytes = len(replay)
        cleanup = clients.SocketClient(self.socket)
        try:
            cleanup.call("terminals.kill", id=terminal, signal="KILL", remove=True)
        finally:
            cleanup.close()
        self.data["reattach"] = {
            "replayBytes": replay_bytes,
            "receivedMs": summarize(received),
            "decodedMs": summarize(decoded),
        }
        log(
            f"re-attach: {replay_bytes:,} bytes of replay, p50 {statistics.median(received):.1f} ms"
        )
        mib = replay_bytes / (1 << 20)
        self.rows.append(
            Row(
                f"re-attach, {mib:.2f} MiB replay: request → reply received, "
                f"p50 of {len(received)}",
                statistics.median(received),
                "ms",
                target="≤ 50 ms",
                check=at_most(50),
            )
        )
        self.rows.append(Row(f"re-attach: the same, worst of {len(received)}", max(received), "ms"))

    # -- the run --------------------------------------------------------------------------

    def run(self) -> None:
        """Every measurement, in order."""
        self.start()
        steps: dict[str, Callable[[], None]] = {
            "throughput": self.throughput,
            "echo": self.echo,
            "ctrl-c": self.ctrl_c,
            "attach": self.reattach,
        }
        assert tuple(steps) == STEPS
        for name, step in steps.items():
            if name not in self.s.only:
                continue
            log(name)
            step()
            assert self.daemon is not None
            self.daemon.check_alive()


def run(settings: Settings) -> int:
    """Measure, print, write the JSON; the exit status (1 if the run broke off)."""
    from tests.bench.suite import environment  # the suite's imports only when run

    began = time.monotonic()
    data: dict[str, Any] = {"environment": environment(), "settings": asdict(settings)}
    data["settings"]["output"] = str(settings.output)
    data["bytecode"] = procs.compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="sa-term-", dir="/tmp"))  # short: AF_UNIX paths
    bench = TerminalsBench(settings, tmp)
    try:
        bench.run()
    except Exception as exc:
        data["error"] = f"{type(exc).__name__}: {exc}"
        log(f"broke off: {data['error']}")
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    data.update(bench.data)
    data["rows"] = [row.to_json() for row in bench.rows]
    data["elapsedS"] = time.monotonic() - began
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(bench.rows))
    print()
    print(
        f"terminals: {data['elapsedS']:.0f} s, {data['environment']['cpus']} CPUs, "
        f"Python {data['environment']['python']}, load average "
        f"{', '.join(f'{x:.1f}' for x in data['environment']['loadAverage'])} at the start; "
        "throughput is the file's bytes over the time from the line typed to the last byte "
        "received (median of the rounds); echo and attach times are round trips seen by the "
        "client."
    )
    return verdict(bench.rows, data, settings.output)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.bench terminals``."""
    return run(parse_args(argv))
