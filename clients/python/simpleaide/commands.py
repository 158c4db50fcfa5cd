"""What each ``simpleaide`` command does: call the daemon, print the answer.

Every handler takes the ``Session`` and the parsed arguments and returns the exit status;
errors are raised (``ClientError``, ``CliError``) and turned into one line by ``cli.run``.
Human output is tables and ``name: value`` lines; ``--json`` prints the daemon's result as is.
The ``status`` command, which status lines run every few seconds, lives apart in
``simpleaide.status`` so that it never loads this module.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import stat
import sys
import time

from simpleaide import fastjson, paths, tables
from simpleaide.client import Client, Conflict, DaemonUnreachable, LimitExceeded
from simpleaide.safetext import escape
from simpleaide.session import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Session,
    print_json,
    version_mismatch,
    workspace_call,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from simpleaide.session import Args


# -- runs ---------------------------------------------------------------------------------


def runs_ls(session: Session, args: Args) -> int:
    """``simpleaide runs ls``."""
    if args.all:
        workspace = None
    elif args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        workspace = paths.find_workspace()
    page = workspace_call(
        session,
        "runs.list",
        workspace,
        status=args.status or None,
        limit=args.limit,
        before=args.before,
    )
    if args.json:
        print_json(page)
        return EXIT_OK
    rows = []
    for run in page["runs"]:
        title = run.get("title") or ""
        if run.get("status") == "corrupt":
            title = f"(corrupt: {run.get('errorMessage') or '?'})"
        rows.append(
            [
                run["id"],
                run["status"],
                str(run.get("stepCount", 0)),
                tables.local_time(run.get("startedAt")),
                tables.age(run.get("completedAt") or run.get("startedAt")),
                tables.one_line(title) if title else "-",
            ]
        )
    if not rows:
        where = f" in {workspace}" if workspace else ""
        print(escape(f"no runs{where}"), file=sys.stderr)
        return EXIT_OK
    headers = ["ID", "STATUS", "STEPS", "STARTED", "AGE", "TITLE"]
    print(tables.render(headers, rows, elastic=5))
    if page.get("nextBefore"):
        print(f"(more: --before {page['nextBefore']})", file=sys.stderr)
    return EXIT_OK


def _steps_table(steps: list[dict[str, Any]]) -> str:
    rows = [
        [
            str(step["number"]),
            step.get("folder") or step.get("name", "?"),
            step["status"],
            tables.local_time(step.get("startedAt")),
            tables.duration(step.get("startedAt"), step.get("completedAt")),
            tables.one_line(step.get("errorMessage")),
        ]
        for step in steps
    ]
    return tables.render(["#", "STEP", "STATUS", "STARTED", "TOOK", "ERROR"], rows, elastic=5)


def runs_show(session: Session, args: Args) -> int:
    """``simpleaide runs show``."""
    run = session.call("runs.get", runId=args.run_id, steps=True)
    if args.json:
        print_json(run)
        return EXIT_OK
    started = run.get("startedAt")
    print(
        tables.fields(
            [
                ("id", run["id"]),
                ("title", tables.one_line(run.get("title"))),
                ("status", run["status"]),
                ("workspace", run.get("workspace") or "-"),
                ("started", f"{tables.local_time(started)} ({tables.age(started)} ago)"),
                ("completed", tables.local_time(run.get("completedAt"))),
                ("error", tables.one_line(run.get("errorMessage"))),
                ("steps", str(run.get("stepCount", 0))),
                ("owner", f"pid {run['ownerPid']}" if run.get("ownerPid") else "-"),
            ]
        )
    )
    steps = run.get("steps")
    if steps:
        print()
        print(_steps_table(steps))
    return EXIT_OK


def runs_create(session: Session, args: Args) -> int:
    """``simpleaide runs create``: prints the new run's id alone."""
    if args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        workspace = paths.find_workspace() or os.getcwd()
    run = session.call(
        "runs.create", workspace=workspace, title=args.title, ownerPid=args.owner_pid
    )
    if args.json:
        print_json(run)
    else:
        print(run["id"])
    return EXIT_OK


def finish_run(method: str, **from_args: str) -> Callable[[Session, Args], int]:
    """A handler for ``method``; ``from_args`` maps wire parameters to argument names."""

    def handler(session: Session, args: Args) -> int:
        extra = {key: getattr(args, attr) for key, attr in from_args.items()}
        run = session.call(method, runId=args.run_id, **extra)
        if args.json:
            print_json(run)
        else:
            print(f"run {run['id']} is {run['status']}")
        return EXIT_OK

    handler.__doc__ = f"``{method}``."
    return handler


def runs_rm(session: Session, args: Args) -> int:
    """``simpleaide runs rm``."""
    result = session.call("runs.delete", runId=args.run_id, force=args.force or None)
    if args.json:
        print_json(result)
    else:
        print(f"run {result['runId']} deleted")
    return EXIT_OK


def runs_prune(session: Session, args: Args) -> int:
    """``simpleaide runs prune``: a table of the runs deleted (or that would be)."""
    if args.keep is None and args.older_than is None:
        raise CliError("give --keep N, --older-than DAYS or both", EXIT_USAGE)
    if args.all:
        workspace = None
    elif args.workspace:
        workspace = paths.absolute(args.workspace)
    else:
        workspace = paths.find_workspace()
        if workspace is None:
            raise CliError(
                "not inside a workspace: give --workspace PATH, or --all for every one",
                EXIT_USAGE,
            )
    result = workspace_call(
        session,
        "runs.prune",
        workspace,
        keep=args.keep,
        olderThanDays=args.older_than,
        dryRun=args.dry_run or None,
    )
    if args.json:
        print_json(result)
        return EXIT_OK
    runs = result["runs"]
    if not runs:
        print("nothing to prune")
        return EXIT_OK
    headers = ["ID", "STATUS", "STARTED", "ENDED"]
    rows = [
        [
            run["id"],
            run["status"],
            tables.local_time(run.get("startedAt")),
            f"{tables.age(run.get('completedAt') or run.get('startedAt'))} ago",
        ]
        for run in runs
    ]
    if workspace is None:
        headers.append("WORKSPACE")
        for row, run in zip(rows, runs, strict=True):
            row.append(run["workspace"])
    print(tables.render(headers, rows, elastic=4 if workspace is None else None))
    count = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
    if result.get("dryRun"):
        print(f"{count} would be deleted (dry run: nothing was deleted)")
    else:
        print(f"{count} deleted")
    return EXIT_OK


# -- steps --------------------------------------------------------------------------------


def step_number(session: Session, run_id: str, step: str) -> int:
    """A step given as a number (``2``), a folder (``02_code``) or a name (``code``);
    a number or folder is taken as such, without asking the daemon."""
    if step.isascii() and step.isdigit():
        return int(step)
    head, sep, _ = step.partition("_")
    if sep and len(head) == 2 and head.isascii() and head.isdigit():
        return int(head)
    found = [s["number"] for s in session.call("steps.list", runId=run_id) if s["name"] == step]
    if not found:
        raise CliError(f"run {run_id} has no step named {step!r}")
    if len(found) > 1:
        numbers = ", ".join(str(n) for n in found)
        raise CliError(
            f"run {run_id} has several steps named {step!r} ({numbers}); give the number"
        )
    return int(found[0])


def _step_changed(change: dict[str, Any], args: Args) -> int:
    if args.json:
        print_json(change)
    else:
        step, run = change["step"], change["run"]
        print(f"step {step['folder']} is {step['status']} (run {run['id']} is {run['status']})")
    return EXIT_OK


def steps_add(session: Session, args: Args) -> int:
    """``simpleaide steps add``: prints the new step's number alone."""
    change = session.call(
        "steps.create", runId=args.run_id, name=args.name, start=args.start or None
    )
    if args.json:
        print_json(change)
    else:
        print(change["step"]["number"])
    return EXIT_OK


def move_step(method: str) -> Callable[[Session, Args], int]:
    """A handler that moves a step with ``method`` (``steps.start``, ``steps.complete``...)."""

    def handler(session: Session, args: Args) -> int:
        number = step_number(session, args.run_id, args.step)
        return _step_changed(session.call(method, runId=args.run_id, step=number), args)

    handler.__doc__ = f"``{method}``."
    return handler


def steps_fail(session: Session, args: Args) -> int:
    """``simpleaide steps fail``."""
    number = step_number(session, args.run_id, args.step)
    change = session.call(
        "steps.fail",
        runId=args.run_id,
        step=number,
        errorMessage=args.message,
        failRun=False if args.keep_run else None,
    )
    return _step_changed(change, args)


def steps_rm_from(session: Session, args: Args) -> int:
    """``simpleaide steps rm-from``."""
    number = step_number(session, args.run_id, args.step)
    run = session.call("steps.deleteFrom", runId=args.run_id, fromStep=number)
    if args.json:
        print_json(run)
    else:
        print(
            f"run {run['id']}: steps from {number} deleted, {run['stepCount']} kept; "
            f"the run is {run['status']}"
        )
    return EXIT_OK


def steps_ls(session: Session, args: Args) -> int:
    """``simpleaide steps ls``."""
    steps = session.call("steps.list", runId=args.run_id)
    if args.json:
        print_json(steps)
    elif steps:
        print(_steps_table(steps))
    else:
        print(escape(f"run {args.run_id} has no steps"), file=sys.stderr)
    return EXIT_OK


# -- artifacts ----------------------------------------------------------------------------


# The most artifact bytes one request or answer carries: a 4 MiB chunk is ~5.6 MB of
# base64, well under the daemon's default 16 MiB message limit, and keeps memory flat.
CHUNK_BYTES = 4 << 20


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``; fewer only at its end (a pipe gives less a read)."""
    parts = []
    while size > 0:
        part = stream.read(size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _pieces(stream: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """``stream`` in pieces of ``size`` bytes, each with whether it is the last; one piece
    is read ahead, so the last is known without knowing the length (stdin)."""
    current = _read_full(stream, size)
    while True:
        following = _read_full(stream, size) if len(current) == size else b""
        yield current, not following
        if not following:
            return
        current = following


@contextlib.contextmanager
def _input(source: str) -> Iterator[BinaryIO]:
    if source == "-":
        if sys.stdin.isatty():
            print(
                "simpleaide: reading the artifact from the terminal; end with Ctrl-D",
                file=sys.stderr,
            )
        yield sys.stdin.buffer
        return
    try:
        stream = open(source, "rb")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def artifacts_put(session: Session, args: Args) -> int:
    """``simpleaide artifacts put``: a small artifact in one request (UTF-8 as text, else
    base64); a larger one streamed in chunks, published whole by the last."""
    number = step_number(session, args.run_id, args.step)
    where = {"runId": args.run_id, "step": number, "name": args.name}
    sent, limits = 0, None
    upload: str | None = None  # the daemon names the upload in its answer to the first chunk
    try:
        with _input(args.file) as stream:
            for piece, last in _pieces(stream, CHUNK_BYTES):
                if last and sent == 0:
                    whole, size = _body(piece)
                    # A message over the daemon's limit closes the connection: ask first,
                    # unless it is small enough for the smallest limit there can be.
                    if size > SURELY_FITS:
                        limits = _limits(session)
                    if limits is None or size + MESSAGE_ROOM <= limits[0]:
                        info = session.call("artifacts.put", **where, **whole)
                        break
                limits = limits or _limits(session)
                limit = limits[1]
                for start in range(0, len(piece), limit):
                    part = piece[start : start + limit]
                    final = last and start + limit >= len(piece)
                    # base64 needs no JSON escaping: spliced in, not scanned by the encoder.
                    chunk = {**where, "offset": sent, "final": final}
                    if upload is not None:
                        chunk["uploadId"] = upload
                    head = fastjson.dumps(chunk)
                    body = base64.b64encode(part).decode("ascii")
                    try:
                        info = session.client().call_encoded(
                            "artifacts.put", f'{head[:-1]},"base64":"{body}"}}'
                        )
                    except Conflict:
                        # The staged upload is gone: its step was rerun, or the upload
                        # cleaned away; nothing was published.
                        raise CliError(
                            f"{args.name}: the upload was interrupted or replaced by another; "
                            "run the command again"
                        ) from None
                    del body
                    upload = info.get("uploadId")
                    sent += len(part)
    except LimitExceeded as exc:
        raise CliError(f"{args.name} is too large: {exc.message}") from None
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.json:
        print_json(info)
    else:
        print(escape(f"saved {info['name']} ({info['size']} bytes) in step {info['step']}"))
    return EXIT_OK


# The daemon's message limit is at least 4 KiB; the rest of a request (ids, an artifact name
# of at most 255 bytes) takes well under 1 KiB.
SURELY_FITS = 3072
MESSAGE_ROOM = 1024


def _body(data: bytes) -> tuple[dict[str, str], int]:
    """The body of a whole put and its size in JSON: UTF-8 goes as text, unless JSON's
    escapes (``\\u0001`` for one byte) would make it larger than base64; else base64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        size = len(fastjson.dumps(text).encode("utf-8", "surrogatepass"))
        if size <= len(data) * 4 // 3 + 4:
            return {"text": text}, size
    encoded = base64.b64encode(data).decode("ascii")
    return {"base64": encoded}, len(encoded) + 2


def _limits(session: Session) -> tuple[int, int]:
    """The daemon's message limit and the chunk size to send: ours, or less if the
    daemon's messages are smaller."""
    info = session.call("daemon.info")
    chunk = min(CHUNK_BYTES, int(info.get("maxArtifactChunkBytes", CHUNK_BYTES)))
    return int(info["maxMessageBytes"]), chunk


def artifacts_get(session: Session, args: Args) -> int:
    """``simpleaide artifacts get``: the exact bytes to a file or a pipe, read in chunks; on
    a terminal, with control characters escaped (an artifact is data, not commands).

    The artifact is read up to the size its first chunk reports, all of one version: a log
    appended to meanwhile is read as it was; one replaced meanwhile is an error."""
    to_file = args.output not in (None, "-")
    number = step_number(session, args.run_id, args.step)
    out: BinaryIO | None = None
    target: _Output | None = None
    shown = None if to_file or not sys.stdout.isatty() else _TerminalText()
    offset, end, version = 0, 0, None
    changed = CliError(f"{args.name} changed while it was read; try again")
    try:
        while True:
            asked = CHUNK_BYTES if version is None else min(CHUNK_BYTES, end - offset)
            try:
                part = session.call(
                    "artifacts.get",
                    runId=args.run_id,
                    step=number,
                    name=args.name,
                    offset=offset,
                    length=asked,
                    encoding="base64",
                    **({} if version is None else {"version": version}),
                )
            except Conflict:
                raise changed from None
            if version is None:
                version, end = str(part["version"]), int(part["size"])
            if out is None:
                if to_file:
                    target = _Output(args.output)
                    out = target.stream
                else:
                    out = sys.stdout.buffer
                    sys.stdout.flush()
            data = base64.b64decode(part.get("base64") or "")
            out.write(shown.feed(data) if shown else data)
            offset += int(part["length"])
            if offset >= end:
                break
            if not part["length"]:
                raise changed  # shorter than it was: cut back behind our back
        if shown and out is not None:
            out.write(shown.feed(b"", final=True))
        if target is not None:
            target.commit()
    except BaseException:
        if target is not None:
            target.discard()  # never leave half a copy behind, never remove what was there
        raise
    if out is not None and target is None:
        out.flush()
    return EXIT_OK


class _Output:
    """Where ``artifacts get -o PATH`` writes. A regular file (or a new one) is written as a
    hidden file in the same folder and renamed over PATH once complete, so a failed transfer
    leaves PATH as it was; anything else (a device, a FIFO, ``/dev/stdout``) is written
    directly and never removed."""

    def __init__(self, path: str) -> None:
        self.path, self.temp = path, ""
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
        # /dev/stdout may name a regular file (stdout redirected): still the caller's stream.
        special = os.path.abspath(path).startswith(("/dev/", "/proc/"))
        if special or (st is not None and not stat.S_ISREG(st.st_mode)):
            self.stream = _open_for_writing(path)
            return
        import tempfile  # only here: it costs milliseconds to import

        self.target = os.path.realpath(path)  # through a symlink: the file it names
        try:
            fd, self.temp = tempfile.mkstemp(
                prefix=".simpleaide-", suffix=".part", dir=os.path.dirname(self.target)
            )
        except PermissionError:
            if st is None:
                raise CliError(f"cannot write {path}: permission denied") from None
            # A file we may write in a folder we may not: written in place, as before.
            self.stream = _open_for_writing(path)
            return
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        self.stream = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Finish: the complete copy takes PATH's place."""
        self.stream.flush()
        if self.temp:
            os.fsync(self.stream.fileno())
        self.stream.close()
        if self.temp:
            os.rename(self.temp, self.target)
            self.temp = ""

    def discard(self) -> None:
        """Give up: remove the partial copy, if this command made one."""
        with contextlib.suppress(OSError):
            self.stream.close()
        if self.temp:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)


def _open_for_writing(path: str) -> BinaryIO:
    try:
        return open(path, "wb")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


class _TerminalText:
    """Bytes for a terminal: decoded as UTF-8 across chunk boundaries, control characters
    escaped (line breaks and tabs kept), bytes that are not UTF-8 shown as ``\\xNN``."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def feed(self, data: bytes, *, final: bool = False) -> bytes:
        text = self._decoder.decode(data, final)
        return escape(text, keep="\n\t").encode("utf-8")


def artifacts_ls(session: Session, args: Args) -> int:
    """``simpleaide artifacts ls``; a file whose name breaks the rules is marked."""
    number = step_number(session, args.run_id, args.step) if args.step else None
    items = session.call("artifacts.list", runId=args.run_id, step=number)
    if args.json:
        print_json(items)
        return EXIT_OK
    if not items:
        print("no artifacts", file=sys.stderr)
        return EXIT_OK
    rows = [
        [
            str(a["step"]),
            a["name"]
            + (
                f"  ({a['problem']})"
                if a.get("problem")
                else "  (invalid name: cannot be read)"
                if a.get("invalidName")
                else ""
            ),
            str(a["size"]),
            tables.local_time(a.get("modifiedAt")),
        ]
        for a in items
    ]
    print(tables.render(["STEP", "NAME", "SIZE", "MODIFIED"], rows, elastic=1))
    return EXIT_OK


# -- workspaces ---------------------------------------------------------------------------


def workspaces_ls(session: Session, args: Args) -> int:
    """``simpleaide workspaces ls``."""
    items = session.call("workspaces.list")
    if args.json:
        print_json(items)
    elif items:
        rows = [[w["path"], str(w["runs"]), w["source"]] for w in items]
        print(tables.render(["PATH", "RUNS", "SOURCE"], rows, elastic=0))
    else:
        print("no workspaces served yet", file=sys.stderr)
    return EXIT_OK


def workspaces_add(session: Session, args: Args) -> int:
    """``simpleaide workspaces add``."""
    info = session.call("workspaces.add", path=paths.absolute(args.path))
    if args.json:
        print_json(info)
    else:
        print(escape(f"serving {info['path']} ({info['runs']} runs)"))
    return EXIT_OK


def workspaces_rm(session: Session, args: Args) -> int:
    """``simpleaide workspaces rm``."""
    result = session.call("workspaces.remove", path=paths.absolute(args.path))
    if args.json:
        print_json(result)
    else:
        print(escape(f"{result['path']} is no longer served (its files stay)"))
    return EXIT_OK


# -- the daemon ---------------------------------------------------------------------------


def daemon_start(session: Session, args: Args) -> int:
    """``simpleaide daemon start``: returns once the daemon answers."""
    from simpleaide.spawn import start_daemon

    with Client(session.socket_path, timeout=session.timeout) as client:
        if client.ping():
            pid = client.peer_pid()
            shown = f" (pid {pid})" if pid else ""
            print(escape(f"simpleaided is already running on {session.socket_path}{shown}"))
            return EXIT_OK
    pid = start_daemon(session.socket_path)
    log = paths.daemon_log_path()
    print(escape(f"simpleaided started on {session.socket_path} (pid {pid}); log: {log}"))
    return EXIT_OK


def _process_gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself hold ") ".
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


STOP_TIMEOUT = 10.0


def daemon_stop(session: Session, args: Args) -> int:
    """``simpleaide daemon stop``: SIGTERM, then wait until it no longer answers."""
    path = session.socket_path
    with Client(path, timeout=session.timeout) as client:
        try:
            info = client.call("daemon.info")
        except DaemonUnreachable:
            print(escape(f"simpleaided is not running on {path}"))
            return EXIT_OK
        pid = client.peer_pid() or int(info["pid"])
    under_systemd = info.get("startMode") in ("socket-activation", "systemd")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise CliError(f"cannot stop simpleaided (pid {pid}): {exc.strerror}") from None
    deadline = time.monotonic() + STOP_TIMEOUT
    delay = 0.005
    while True:
        # Under socket activation a connection would start the daemon again: only the
        # process is watched then.
        answering = False
        if not under_systemd:
            with Client(path, timeout=1.0) as probe:
                answering = probe.ping()
        if not answering and _process_gone(pid):
            print(f"simpleaided stopped (pid {pid})")
            if under_systemd:
                print(
                    "it was started by systemd, which starts it again on the next connection; "
                    "to stop it for good: systemctl --user stop simpleaided.socket "
                    "simpleaided.service"
                )
            return EXIT_OK
        if time.monotonic() >= deadline:
            raise CliError(f"simpleaided (pid {pid}) did not stop within {STOP_TIMEOUT:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _uptime(ms: int) -> str:
    seconds = ms // 1000
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def daemon_status(session: Session, args: Args) -> int:
    """``simpleaide daemon status``: exit 3 when no daemon answers."""
    with Client(session.socket_path, timeout=session.timeout) as client:
        try:
            info = client.call("daemon.info")
        except DaemonUnreachable:
            raise DaemonUnreachable(
                f"simpleaided is not running (no daemon answers on {session.socket_path})"
            ) from None
    if args.json:
        print_json(info)
        return EXIT_OK
    warnings = info.get("warnings") or []
    mismatch = version_mismatch(info)
    protocol = f"version {info.get('apiVersion', '?')}"
    print(
        tables.fields(
            [
                ("simpleaided", f"{info.get('version', '?')}, running (pid {info.get('pid')})"),
                ("started by", START_MODES.get(info.get("startMode"), "unknown")),
                ("uptime", _uptime(int(info.get("uptimeMs") or 0))),
                ("protocol", f"{protocol} (mismatch: see below)" if mismatch else protocol),
                ("socket", str(info.get("socket"))),
                ("env", str(info.get("env"))),
                ("config", info.get("configFile") or "none (defaults)"),
                ("workspaces", str(info.get("workspaces"))),
                ("runs", str(info.get("runs"))),
                ("warnings", str(len(warnings)) if warnings else "none"),
            ]
        )
    )
    if mismatch:
        print(f"  ! {escape(mismatch)}")
    for warning in warnings:
        print(f"  ! {escape(warning)}")
    return EXIT_OK


# How ``daemon.info``'s ``startMode`` reads in ``simpleaide daemon status``.
START_MODES = {
    "socket-activation": "systemd, on the first connection (socket activation)",
    "systemd": "systemd (a service)",
    "cli": "simpleaide, on demand (log: $XDG_STATE_HOME/simpleaide/daemon.log)",
    "foreground": "hand, in the foreground",
}
