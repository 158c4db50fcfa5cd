"""The ``status.*`` contract: the status document (defined with its computation) and its stream."""

from __future__ import annotations

from pydantic import BaseModel

from simpleaided.domain.status import StatusDocument


class StatusSnapshot(BaseModel):
    """``status.subscribe``: the document now and the ``seq`` it reflects.

    ``status.changed`` notifications then carry ``{seq, status}`` with a larger ``seq``.
    """

    seq: int
    status: StatusDocument
