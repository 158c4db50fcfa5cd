"""The fixtures: short socket paths, isolated XDG folders, a real daemon in-process; what they
are built on lives in ``tests/support/``."""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.pgproxy import PG_HOST, PG_PORT, PG_URL
from tests.support.rpc import RpcClient
from tests.support.sandbox import Sandbox


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the test process's own garbage collector out of the daemon's timings.

    Tests run the daemon in this process, beside everything the suite imports (schemathesis,
    hypothesis, playwright...): a full collection then walks ~110k objects and pauses the
    event loop for up to ~100 ms, which a test bounding the loop's stalls sees as the
    daemon's. Frozen once collected, those objects are never walked again.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _dumpable_again() -> Iterator[None]:
    """An in-process daemon whose vault got a passphrase makes this process non-dumpable
    (``PR_SET_DUMPABLE``); each test starts from a dumpable process again."""
    yield
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> str:
    """The machine's PostgreSQL URL; skipped when it is not running, a failure on CI."""
    import psycopg

    from simpleaided.store.sql.postgres import pg_error_line

    try:
        psycopg.connect(PG_URL, connect_timeout=2).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {pg_error_line(str(exc))}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the PostgreSQL tests must run)")
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Isolated folders and a socket for running the installed ``simpleaide`` command;
    any daemon it started is stopped after the test."""
    box = Sandbox.create()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path (AF_UNIX paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sa-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def isolated_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and the XDG folders into ``short_tmp`` so no test touches real user files."""
    for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        folder = short_tmp / name.lower()
        folder.mkdir(mode=0o700)
        monkeypatch.setenv(name, str(folder))
    for name in list(os.environ):
        if name.startswith("SIMPLEAIDE_"):
            monkeypatch.delenv(name)
    return short_tmp


@pytest.fixture
def workspace(short_tmp: Path) -> Path:
    """An empty workspace folder."""
    path = short_tmp / "ws"
    path.mkdir()
    return path


@pytest.fixture
def socket_path(short_tmp: Path) -> Path:
    return short_tmp / "run" / "daemon.sock"


@pytest.fixture
async def daemon(isolated_env: Path, socket_path: Path) -> AsyncIterator[Daemon]:
    """A real daemon with the default settings; stopped after the test."""
    async with running_daemon(socket_path, isolated_env / "state") as started:
        yield started


@pytest.fixture
async def client(daemon: Daemon, socket_path: Path) -> AsyncIterator[RpcClient]:
    """A client connected to the daemon with newline-delimited JSON."""
    async with await RpcClient.connect(socket_path) as c:
        yield c
