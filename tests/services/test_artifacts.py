"""Artifacts of any size and any name on disk: chunked puts and gets, odd files in listings."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from simpleaided.domain.api import ArtifactContent, ArtifactInfo
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.runs import new_run

MiB = 1 << 20


async def new_step(client: RpcClient, workspace: Path) -> str:
    """The id of a new run whose step 1 (plan) is running."""
    return str((await new_run(client, workspace, "plan", start=True))["id"])


def artifacts_dir(workspace: Path, run_id: str) -> Path:
    return workspace / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def put(client: RpcClient, run_id: str, name: str, data: bytes, **extra: Any) -> Any:
    return await client.call(
        "artifacts.put", runId=run_id, step=1, name=name, base64=b64(data), **extra
    )


async def test_a_chunked_upload_is_published_whole_by_its_final_chunk(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    await put(client, run_id, "log.txt", b"old")
    first = await put(client, run_id, "log.txt", b"hello ", offset=0, final=False)
    assert first["size"] == 6 and first["staged"] is True
    # Until the final chunk, readers see the old version and the listing its size.
    got = await client.call("artifacts.get", runId=run_id, step=1, name="log.txt")
    assert got["text"] == "old"
    listed = await client.call("artifacts.list", runId=run_id)
    assert [(a["name"], a["size"]) for a in listed] == [("log.txt", 3)]
    last = ArtifactInfo.model_validate(
        await put(
            client, run_id, "log.txt", b"world", offset=6, final=True, uploadId=first["uploadId"]
        )
    )
    assert last.size == 11 and not last.staged
    got = await client.call("artifacts.get", runId=run_id, step=1, name="log.txt")
    assert got["text"] == "hello world"
    # Nothing but the artifact is left in the folder.
    assert sorted(os.listdir(artifacts_dir(workspace, run_id))) == ["log.txt"]


async def test_a_chunk_never_leaves_a_gap_and_a_retry_is_harmless(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    upload = (await put(client, run_id, "a.bin", b"0123", offset=0, final=False))["uploadId"]
    err = await client.error(
        "artifacts.put",
        runId=run_id,
        step=1,
        name="a.bin",
        base64=b64(b"x"),
        offset=9,
        final=False,
        uploadId=upload,
    )
    assert err.code == -32011 and "4 bytes" in err.message
    # The same chunk sent twice (its reply lost) gives the same file.
    await put(client, run_id, "a.bin", b"4567", offset=4, final=False, uploadId=upload)
    await put(client, run_id, "a.bin", b"4567", offset=4, final=False, uploadId=upload)
    await put(client, run_id, "a.bin", b"89", offset=8, final=True, uploadId=upload)
    assert (artifacts_dir(workspace, run_id) / "a.bin").read_bytes() == b"0123456789"
    # A chunk of an upload no longer in progress is refused, in words.
    err = await client.error(
        "artifacts.put",
        runId=run_id,
        step=1,
        name="a.bin",
        base64=b64(b"x"),
        offset=3,
        final=True,
        uploadId=upload,
    )
    assert err.code == -32011 and "not in progress" in err.message
    # 'final' belongs to chunked uploads only, and a chunked one needs it.
    err = await client.error(
        "artifacts.put", runId=run_id, step=1, name="a.bin", text="x", final=True
    )
    assert err.code == -32602
    err = await client.error(
        "artifacts.put", runId=run_id, step=1, name="a.bin", text="x", offset=0
    )
    assert err.code == -32602 and "final" in str(err.data)


async def test_append_grows_the_published_artifact(client: RpcClient, workspace: Path) -> None:
    run_id = await new_step(client, workspace)
    await client.call(
        "artifacts.put", runId=run_id, step=1, name="run.log", text="a\n", append=True
    )
    info = await client.call(
        "artifacts.put", runId=run_id, step=1, name="run.log", text="b\n", append=True, offset=2
    )
    assert info["size"] == 4
    # With an offset, an append lands only at the artifact's end: a lost reply is detected.
    err = await client.error(
        "artifacts.put", runId=run_id, step=1, name="run.log", text="b\n", append=True, offset=2
    )
    assert err.code == -32011 and "4 bytes" in err.message
    got = await client.call("artifacts.get", runId=run_id, step=1, name="run.log")
    assert got["text"] == "a\nb\n"


async def test_get_reads_a_range_and_tells_the_whole_size(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    data = bytes(range(256)) * 4
    await put(client, run_id, "blob.bin", data)
    part = ArtifactContent.model_validate(
        await client.call(
            "artifacts.get", runId=run_id, step=1, name="blob.bin", offset=1000, length=100
        )
    )
    assert (part.size, part.offset, part.length) == (1024, 1000, 24)
    assert base64.b64decode(part.base64 or "") == data[1000:]
    end = await client.call("artifacts.get", runId=run_id, step=1, name="blob.bin", offset=1024)
    assert end["length"] == 0 and end["size"] == 1024
    err = await client.error("artifacts.get", runId=run_id, step=1, name="blob.bin", offset=1025)
    assert err.code == -32602 and "1024 bytes" in err.message


async def test_over_the_chunk_limit_a_get_says_how_to_read_in_parts(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    limit = 64 * 1024
    async with running_daemon(
        socket_path, isolated_env / "s", **{"limits.max_message_bytes": limit}
    ):
        async with await RpcClient.connect(socket_path) as c:
            info = await c.call("daemon.info")
            chunk = info["maxArtifactChunkBytes"]
            assert 0 < chunk < limit * 3 // 4
            run_id = await new_step(c, workspace)
            data = os.urandom(3 * limit)
            (artifacts_dir(workspace, run_id) / "big.bin").write_bytes(data)
            err = await c.error("artifacts.get", runId=run_id, step=1, name="big.bin")
            assert err.code == -32040 and "offset" in err.message
            # Asking for more than a chunk gives a chunk: a client loops on what it got.
            got, offset = b"", 0
            while True:
                part = await c.call(
                    "artifacts.get",
                    runId=run_id,
                    step=1,
                    name="big.bin",
                    offset=offset,
                    length=limit,
                    encoding="base64",
                )
                assert 0 < part["length"] <= chunk or offset == part["size"]
                got += base64.b64decode(part["base64"])
                offset += part["length"]
                if offset >= part["size"]:
                    break
            assert got == data


async def test_a_200_mb_artifact_goes_through_in_chunks(client: RpcClient, workspace: Path) -> None:
    run_id = await new_step(client, workspace)
    chunk = 4 * MiB
    total = 200 * 1000 * 1000
    block = os.urandom(chunk)
    # Reads use the same chunk boundaries as the writes, so the same bytes come back as the
    # same base64 text: hashing that text checks the content without decoding it again here.
    want = hashlib.sha256()
    offset = 0
    upload = b""
    while offset < total:
        # Each chunk differs: a chunk written at the wrong place would change the hash.
        data = (offset.to_bytes(8, "big") + block)[: min(chunk, total - offset)]
        encoded = base64.b64encode(data)
        want.update(encoded)
        final = b"true" if offset + len(data) == total else b"false"
        # Spliced by hand: the test client's JSON encoder would cost more than the daemon.
        await client.send_raw(
            b'{"jsonrpc":"2.0","id":1,"method":"artifacts.put","params":{"runId":"%s","step":1,'
            b'"name":"big.bin","offset":%d,"final":%s,%s"base64":"%s"}}\n'
            % (run_id.encode(), offset, final, upload, encoded)
        )
        reply = orjson.loads(await client.receive_line())
        assert reply["result"]["size"] == offset + len(data), reply
        upload = b'"uploadId":"%s",' % reply["result"]["uploadId"].encode()
        offset += len(data)
    got = hashlib.sha256()
    offset = 0
    while True:
        await client.send_raw(
            b'{"jsonrpc":"2.0","id":2,"method":"artifacts.get","params":{"runId":"%s","step":1,'
            b'"name":"big.bin","offset":%d,"length":%d,"encoding":"base64"}}\n'
            % (run_id.encode(), offset, chunk)
        )
        part = orjson.loads(await client.receive_line())["result"]
        got.update(part["base64"].encode("ascii"))
        offset += part["length"]
        if offset >= part["size"]:
            break
    assert offset == total and got.hexdigest() == want.hexdigest()
    on_disk = hashlib.sha256()
    with open(artifacts_dir(workspace, run_id) / "big.bin", "rb") as f:
        while piece := f.read(chunk):
            on_disk.update(base64.b64encode(piece))
    assert on_disk.hexdigest() == want.hexdigest()


async def test_a_name_that_is_not_utf8_on_disk_is_listed_marked_and_not_read(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    await client.call("artifacts.put", runId=run_id, step=1, name="ok.txt", text="fine")
    folder = os.open(artifacts_dir(workspace, run_id), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for raw in (b"bad\xff.txt", b"esc\x1b[31m.txt"):
            fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder)
            os.write(fd, b"x")
            os.close(fd)
    finally:
        os.close(folder)
    listed = await client.call("artifacts.list", runId=run_id)
    by_name = {a["name"]: a for a in listed}
    assert set(by_name) == {"bad\\xff.txt", "esc\x1b[31m.txt", "ok.txt"}
    assert by_name["bad\\xff.txt"]["invalidName"] is True
    assert by_name["esc\x1b[31m.txt"]["invalidName"] is True
    assert by_name["ok.txt"]["invalidName"] is False
    assert await client.call("artifacts.list", runId=run_id, step=1) == listed
    err = await client.error("artifacts.get", runId=run_id, step=1, name="bad\\xff.txt")
    assert err.code == -32602 and "not UTF-8 on disk" in str(err.data)
    err = await client.error("artifacts.get", runId=run_id, step=1, name="esc\x1b[31m.txt")
    assert err.code == -32602 and "U+001B" in str(err.data)
    assert await client.call("daemon.ping") == "pong"


async def test_odd_names_are_refused_on_the_wire_and_nothing_is_written(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    run_dir = workspace / ".simpleaide" / "runs" / run_id
    before = sorted(p.name for p in run_dir.rglob("*"))
    err = await client.error("steps.create", runId=run_id, name="code\n")
    assert err.code == -32602
    for name in (
        "a\u009bb",
        "a\u0085b",
        "evil\u202egpj.exe",
        "plan\u200b.md",
        "re\u0301sume\u0301",
    ):
        err = await client.error("artifacts.put", runId=run_id, step=1, name=name, text="x")
        assert err.code == -32602, name
    assert sorted(p.name for p in run_dir.rglob("*")) == before


async def test_two_uploads_of_one_name_each_publish_their_own_content(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    a0 = await put(client, run_id, "report.bin", b"A" * 4, offset=0, final=False)
    b0 = await put(client, run_id, "report.bin", b"B" * 4, offset=0, final=False)
    assert a0["uploadId"] and b0["uploadId"] and a0["uploadId"] != b0["uploadId"]
    a1 = await put(
        client, run_id, "report.bin", b"A" * 4, offset=4, final=True, uploadId=a0["uploadId"]
    )
    assert a1["size"] == 8 and not a1["staged"]
    got = await client.call("artifacts.get", runId=run_id, step=1, name="report.bin")
    assert got["text"] == "A" * 8
    b1 = await put(
        client, run_id, "report.bin", b"B" * 4, offset=4, final=True, uploadId=b0["uploadId"]
    )
    assert b1["size"] == 8
    got = await client.call("artifacts.get", runId=run_id, step=1, name="report.bin")
    assert got["text"] == "B" * 8  # the last final wins, whole
    # B's final sent again (its reply lost): the same answer, nothing changes.
    again = await put(
        client, run_id, "report.bin", b"B" * 4, offset=4, final=True, uploadId=b0["uploadId"]
    )
    assert again == b1
    # A's final sent again: A's file is no longer there; the client is told, in words.
    err = await client.error(
        "artifacts.put",
        runId=run_id,
        step=1,
        name="report.bin",
        base64=b64(b"A" * 4),
        offset=4,
        final=True,
        uploadId=a0["uploadId"],
    )
    assert err.code == -32011 and "interrupted or replaced" in err.message
    # An unknown id, and a chunk past 0 without any id, are refused.
    err = await client.error(
        "artifacts.put",
        runId=run_id,
        step=1,
        name="report.bin",
        base64=b64(b"x"),
        offset=0,
        final=False,
        uploadId="1f-0123456789abcdef",
    )
    assert err.code == -32011
    err = await client.error(
        "artifacts.put",
        runId=run_id,
        step=1,
        name="report.bin",
        base64=b64(b"x"),
        offset=4,
        final=True,
    )
    assert err.code == -32602 and "uploadId" in str(err.data)
    assert sorted(os.listdir(artifacts_dir(workspace, run_id))) == ["report.bin"]


async def test_a_refused_append_creates_nothing(client: RpcClient, workspace: Path) -> None:
    run_id = await new_step(client, workspace)
    err = await client.error(
        "artifacts.put", runId=run_id, step=1, name="never.log", text="x", append=True, offset=5
    )
    assert err.code == -32011 and "0 bytes" in err.message
    assert await client.call("artifacts.list", runId=run_id) == []
    assert os.listdir(artifacts_dir(workspace, run_id)) == []


async def test_a_hard_linked_artifact_is_not_written_in_place(
    client: RpcClient, workspace: Path, short_tmp: Path
) -> None:
    run_id = await new_step(client, workspace)
    victim = short_tmp / "victim"
    victim.write_bytes(b"precious\n")
    os.link(victim, artifacts_dir(workspace, run_id) / "linked.log")
    err = await client.error(
        "artifacts.put", runId=run_id, step=1, name="linked.log", text="x", append=True
    )
    assert err.code == -32602 and "hard link" in err.message
    assert victim.read_bytes() == b"precious\n"


async def test_the_version_survives_an_append_and_changes_on_a_replace(
    client: RpcClient, workspace: Path
) -> None:
    run_id = await new_step(client, workspace)
    await put(client, run_id, "build.log", b"one\n")
    first = await client.call("artifacts.get", runId=run_id, step=1, name="build.log")
    await client.call(
        "artifacts.put", runId=run_id, step=1, name="build.log", text="two\n", append=True
    )
    appended = await client.call("artifacts.get", runId=run_id, step=1, name="build.log")
    assert first["version"] and appended["version"] == first["version"]
    await put(client, run_id, "build.log", b"new\n")
    replaced = await client.call("artifacts.get", runId=run_id, step=1, name="build.log")
    assert replaced["version"] != first["version"]
    up = await put(client, run_id, "build.log", b"chunked", offset=0, final=True)
    assert up["uploadId"]
    chunked = await client.call("artifacts.get", runId=run_id, step=1, name="build.log")
    assert chunked["version"] != replaced["version"]


async def test_a_ranged_text_read_always_fits_one_message(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    async with running_daemon(
        socket_path, isolated_env / "s", **{"limits.max_message_bytes": 64 * 1024}
    ):
        async with await RpcClient.connect(socket_path) as c:
            chunk = (await c.call("daemon.info"))["maxArtifactChunkBytes"]
            run_id = await new_step(c, workspace)
            # Control characters (six bytes each in JSON) around two-byte characters.
            data = ("\x01é" * chunk).encode()[: 3 * chunk]
            (artifacts_dir(workspace, run_id) / "ctl.txt").write_bytes(data)
            where = {"runId": run_id, "step": 1, "name": "ctl.txt"}
            # No encoding asked: what fits, base64 if escaped text would not.
            part = await c.call("artifacts.get", **where, offset=0, length=chunk)
            assert part["length"] == chunk and part["encoding"] == "base64"
            assert base64.b64decode(part["base64"]) == data[:chunk]
            # Text asked: fewer bytes, never half a character; the client goes on from there.
            got, offset = b"", 0
            while offset < len(data):
                part = await c.call(
                    "artifacts.get", **where, offset=offset, length=chunk, encoding="text"
                )
                assert part["encoding"] == "text" and 0 < part["length"] <= chunk
                assert part["text"].encode() == data[offset : offset + part["length"]]
                got += part["text"].encode()
                offset += part["length"]
            assert got == data


async def test_listing_never_fails_on_what_is_on_disk(client: RpcClient, workspace: Path) -> None:
    import threading

    run_id = await new_step(client, workspace)
    await client.call("steps.create", runId=run_id, name="churn")
    await client.call("steps.create", runId=run_id, name="odd")
    run_dir = workspace / ".simpleaide" / "runs" / run_id
    churn = run_dir / "02_churn" / "artifacts"
    churn.mkdir(exist_ok=True)
    stop = threading.Event()

    def create_and_delete() -> None:
        i = 0
        while not stop.is_set():
            path = churn / f"f{i % 50}"
            path.touch()
            path.unlink()
            i += 1

    thread = threading.Thread(target=create_and_delete)
    thread.start()
    try:
        for _ in range(300):
            await client.call("artifacts.list", runId=run_id, step=2)
    finally:
        stop.set()
        thread.join()
    # A step folder without artifacts/ lists as empty; a symlinked one is marked, not fatal.
    odd = run_dir / "03_odd" / "artifacts"
    if odd.exists():
        odd.rmdir()
    assert await client.call("artifacts.list", runId=run_id, step=3) == []
    odd.symlink_to("/tmp")
    await put(client, run_id, "plan.md", b"# plan")
    listed = await client.call("artifacts.list", runId=run_id)
    assert [a["name"] for a in listed if a["step"] == 1] == ["plan.md"]
    [marked] = [a for a in listed if a["step"] == 3]
    assert marked["invalidName"] is True and "symlink" in marked["problem"]
    assert await client.call("artifacts.list", runId=run_id, step=3) == [marked]


async def test_abandoned_uploads_are_removed_after_a_day(
    client: RpcClient, workspace: Path
) -> None:
    import time

    run_id = await new_step(client, workspace)
    old = await put(client, run_id, "old.bin", b"x", offset=0, final=False)
    recent = await put(client, run_id, "recent.bin", b"x", offset=0, final=False)
    folder = artifacts_dir(workspace, run_id)
    [old_file] = [p for p in folder.iterdir() if old["uploadId"] in p.name]
    day_ago = time.time() - 25 * 3600
    os.utime(old_file, (day_ago, day_ago))
    # The next upload in the step tidies; the recent one stays and still goes on.
    await put(client, run_id, "new.bin", b"y", offset=0, final=True)
    assert not old_file.exists()
    done = await put(
        client, run_id, "recent.bin", b"z", offset=1, final=True, uploadId=recent["uploadId"]
    )
    assert done["size"] == 2
    assert sorted(os.listdir(folder)) == ["new.bin", "recent.bin"]
