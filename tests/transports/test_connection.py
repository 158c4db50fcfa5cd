"""A connection's senders: replies and notifications never interleave, whoever sends first."""

from __future__ import annotations

import anyio
import anyio.lowlevel

from simpleaided.transports.server import Connection
from simpleaided.transports.unix_socket import PeerCredentials


class SlowStream:
    """Writes each message in pieces, yielding between them, as a full socket buffer would."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    async def send(self, payload: bytes) -> None:
        for k in range(0, len(payload), 4):
            self.pieces.append(payload[k : k + 4])
            await anyio.lowlevel.checkpoint()


async def test_replies_and_notifications_never_interleave() -> None:
    stream = SlowStream()
    conn = Connection(1, PeerCredentials(pid=1, uid=0, gid=0), stream)  # type: ignore[arg-type]
    sent = 0

    async def notifier() -> None:
        nonlocal sent
        for n in range(20):
            await conn.send(b"<notification %02d>" % n)
            sent += 1

    async with anyio.create_task_group() as tg:
        conn.task_group = tg
        await conn.send(b"<reply first>")  # no helper yet: the unlocked path
        conn.start_after_reply(notifier)
        conn._start_pending()
        assert conn._helpers == 1
        for n in range(20):
            await conn.send(b"<reply %02d>" % n)
    assert conn._helpers == 0 and sent == 20
    text = b"".join(stream.pieces).decode()
    messages = text.replace("><", ">\n<").splitlines()
    assert len(messages) == 41
    assert all(m.startswith("<") and m.endswith(">") and m.count("<") == 1 for m in messages)
