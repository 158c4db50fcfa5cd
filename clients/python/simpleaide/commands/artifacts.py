"""``simpleaide artifacts``: save, read and list the artifacts of a run's steps (``rm``, which
deletes one, is declared by ``commands.artifactrm``)."""

from __future__ import annotations

import base64
import contextlib
import os
import stat
import sys

from simpleaide import fastjson, tables
from simpleaide.client import Conflict, LimitExceeded
from simpleaide.commands import RUN_HELP, STEP_HELP, artifactrm, reply
from simpleaide.commands.steps import step_number
from simpleaide.safetext import escape
from simpleaide.session import EXIT_OK, CliError, Session, refuse_non_utf8

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from simpleaide.commands import Commands
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``artifacts`` commands."""
    artifacts = tree.group("artifacts", "save, read, list and delete step artifacts")
    put = artifacts.add(
        "put",
        "save an artifact of a step from a file or stdin",
        artifacts_put,
        description="Save FILE (or stdin) as artifact NAME of a step, replacing one of the\n"
        "same name. Any bytes are kept exactly.",
    )
    put.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    put.add_argument("step", metavar="STEP", help=STEP_HELP)
    put.add_argument("name", metavar="NAME", help="the artifact's name, e.g. plan.md")
    put.add_argument("file", metavar="FILE", nargs="?", default="-", help="default: stdin (-)")
    get = artifacts.add(
        "get",
        "write an artifact's bytes to stdout or a file",
        artifacts_get,
        description="Write the artifact's exact bytes to stdout (a pipe, a file) or to FILE.\n"
        "On a terminal, text is shown with its control characters escaped; binary content\n"
        "(a NUL byte, or bytes that are not UTF-8, near its start) is refused (exit 1)\n"
        "unless -o FILE or --force, which shows it escaped.",
        json_output=False,
    )
    get.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    get.add_argument("step", metavar="STEP", help=STEP_HELP)
    get.add_argument("name", metavar="NAME", help="the artifact's name")
    get.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    get.add_argument(
        "--force", action="store_true", help="show binary content on a terminal (escaped)"
    )
    ls = artifacts.add("ls", "list the artifacts of a run or a step", artifacts_ls)
    ls.add_argument("run_id", metavar="RUN_ID", help=RUN_HELP)
    ls.add_argument("step", metavar="STEP", nargs="?", help=STEP_HELP)
    artifactrm.register(artifacts)


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
    refuse_non_utf8(where)  # before a chunk is sent as it is, unchecked by session.call
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
    return reply(
        args,
        info,
        lambda info: print(
            escape(
                f"saved {info['name']} ({tables.size(int(info['size']))}) in step {info['step']}"
            )
        ),
    )


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
    out: BinaryIO | _Output | None = None
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
            data = base64.b64decode(part.get("base64") or "")
            if version is None:
                version, end = str(part["version"]), int(part["size"])
                if shown and not args.force and looks_binary(data, whole=len(data) >= end):
                    raise CliError(
                        f"{args.name} is binary and would garble the terminal; "
                        "use -o FILE to save it, or --force to show it escaped"
                    )
            if out is None:
                if to_file:
                    target = out = _Output(args.output)
                else:
                    out = sys.stdout.buffer
                    sys.stdout.flush()
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
        sys.stdout.buffer.flush()
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

    def write(self, data: bytes) -> None:
        """Write ``data``; a failure (a full disk, an I/O error) is said in one line."""
        try:
            self.stream.write(data)
        except OSError as exc:
            raise self._failed(exc) from None

    def commit(self) -> None:
        """Finish: the complete copy takes PATH's place."""
        try:
            self.stream.flush()
            if self.temp:
                os.fsync(self.stream.fileno())
            self.stream.close()
            if self.temp:
                os.rename(self.temp, self.target)
                self.temp = ""
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> CliError:
        return CliError(f"cannot write {self.path}: {exc.strerror or exc}")

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


# How much of an artifact's start decides whether it is binary (git looks at 8000 bytes).
BINARY_SNIFF_BYTES = 8192


def looks_binary(data: bytes, *, whole: bool) -> bool:
    """Whether content starting with ``data`` is binary, as git and grep judge: a NUL byte,
    or bytes that are not UTF-8, in its first few KiB. ``whole``: ``data`` is all of it (else
    a character cut at the end of the sample is not held against it)."""
    head = data[:BINARY_SNIFF_BYTES]
    if b"\0" in head:
        return True
    import codecs

    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, whole and len(data) == len(head))
    except UnicodeDecodeError:
        return True
    return False


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
    return reply(args, items, _show_artifacts)


def _show_artifacts(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no artifacts", file=sys.stderr)
        return
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
            tables.size(int(a["size"])),
            tables.local_time(a.get("modifiedAt")),
        ]
        for a in items
    ]
    print(tables.render(["STEP", "NAME", "SIZE", "MODIFIED"], rows, elastic=1, right={2}))
