"""The HTTP token file: made once, 0600, 64 hex digits, kept, rotated atomically; whatever
else is found under its name is replaced, never used."""

from __future__ import annotations

import os
import random
import re
import stat
import threading
import time
from pathlib import Path

import pytest

from simpleaided.domain.errors import UnsafePath
from simpleaided.store import tokenfile
from simpleaided.store.tokenfile import TOKEN_FILE, TokenFile, read_or_create, rotate

HEX64 = re.compile(r"[0-9a-f]{64}")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_made_once_0600_and_kept(short_tmp: Path) -> None:
    folder = short_tmp / "run" / "simpleaide"
    token = read_or_create(folder)
    assert HEX64.fullmatch(token)
    path = folder / TOKEN_FILE
    assert path.read_text() == token + "\n"
    assert mode_of(path) == 0o600 and mode_of(folder) == 0o700
    assert read_or_create(folder) == token  # kept: a restart reads the same
    assert read_or_create(folder) == token


def test_made_0600_whatever_the_umask(short_tmp: Path) -> None:
    old = os.umask(0)
    try:
        read_or_create(short_tmp)
    finally:
        os.umask(old)
    assert mode_of(short_tmp / TOKEN_FILE) == 0o600


def test_rotate_replaces_it_atomically(short_tmp: Path) -> None:
    first = read_or_create(short_tmp)
    inode = os.lstat(short_tmp / TOKEN_FILE).st_ino
    second = rotate(short_tmp)
    assert HEX64.fullmatch(second) and second != first
    assert read_or_create(short_tmp) == second
    assert os.lstat(short_tmp / TOKEN_FILE).st_ino != inode  # a new file renamed over it
    assert mode_of(short_tmp / TOKEN_FILE) == 0o600
    assert [p.name for p in short_tmp.iterdir()] == [TOKEN_FILE]  # no temporary file left


def test_tokens_are_random(short_tmp: Path) -> None:
    tokens = {rotate(short_tmp) for _ in range(50)}
    assert len(tokens) == 50


@pytest.mark.parametrize(
    "content",
    [b"", b"short\n", b"A" * 64 + b"\n", b"g" * 64, b"0" * 65, b"0" * 5000, b"\xff" * 64],
)
def test_a_malformed_file_is_replaced(
    short_tmp: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = short_tmp / TOKEN_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    token = read_or_create(short_tmp)
    assert HEX64.fullmatch(token) and path.read_text() == token + "\n"
    assert "replaced by a new token" in caplog.text


def test_a_file_others_may_read_is_replaced(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = short_tmp / TOKEN_FILE
    exposed = "a" * 64
    path.write_text(exposed + "\n")
    path.chmod(0o644)
    token = read_or_create(short_tmp)
    assert token != exposed and mode_of(path) == 0o600
    assert "readable by others" in caplog.text and exposed not in caplog.text


def test_a_symlink_is_replaced_not_followed(short_tmp: Path) -> None:
    target = short_tmp / "elsewhere"
    target.write_text("b" * 64 + "\n")
    target.chmod(0o600)
    (short_tmp / TOKEN_FILE).symlink_to(target)
    token = read_or_create(short_tmp)
    assert token != "b" * 64
    assert not (short_tmp / TOKEN_FILE).is_symlink()
    assert target.read_text() == "b" * 64 + "\n"  # the link's target was not written


def test_a_folder_others_may_write_is_refused(short_tmp: Path) -> None:
    folder = short_tmp / "open"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(UnsafePath, match="writable by others"):
        read_or_create(folder)
    assert not (folder / TOKEN_FILE).exists()


def test_the_holder_is_empty_until_loaded_and_never_shows_the_token(short_tmp: Path) -> None:
    held = TokenFile(short_tmp)
    assert held.current() == ""  # matches nothing: the shim refuses every token meanwhile
    held.load()
    token = held.current()
    assert token == (short_tmp / TOKEN_FILE).read_text().strip()
    assert token not in repr(held)
    new = held.rotate()
    assert new != token and held.current() == new == tokenfile.read_or_create(short_tmp)


def test_concurrent_rotations_leave_the_file_and_the_token_in_use_agreeing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``http.rotateToken`` rotates in a worker thread: two at once must not leave the file
    holding one token and the daemon accepting the other."""
    held = TokenFile(short_tmp)
    held.load()
    written = tokenfile.rotate

    def slow_rotate(folder: Path) -> str:  # widens the gap between the write and the use
        token = written(folder)
        time.sleep(random.uniform(0, 0.002))
        return token

    monkeypatch.setattr(tokenfile, "rotate", slow_rotate)

    def rotate_once(start: threading.Barrier) -> None:
        start.wait()
        held.rotate()

    for _ in range(20):
        start = threading.Barrier(6)
        threads = [threading.Thread(target=rotate_once, args=(start,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (short_tmp / TOKEN_FILE).read_text() == held.current() + "\n"


def test_a_rotation_failing_after_the_rename_keeps_file_and_memory_agreeing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new file is in place when fsyncing its folder fails: the token in use must be the
    one in the file, not the old one, though the rotation says it failed."""
    held = TokenFile(short_tmp)
    held.load()
    old = held.current()
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_failing_on_the_folder(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the file's own fsync passes; the folder's, after the rename, fails
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_failing_on_the_folder)
    with pytest.raises(OSError):
        held.rotate()
    monkeypatch.setattr(os, "fsync", real_fsync)
    in_file = (short_tmp / TOKEN_FILE).read_text().strip()
    assert in_file != old  # the rename happened
    assert held.current() == in_file
