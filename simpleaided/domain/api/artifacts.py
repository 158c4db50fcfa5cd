"""The ``artifacts.*`` contract: saving (whole, chunked, appended), reading and listing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from simpleaided.domain.api.base import RunRef, StepRef
from simpleaided.domain.api.fields import ArtifactName as ArtifactName
from simpleaided.domain.api.fields import StepNumber

UploadId = Annotated[
    str,
    Field(
        title="upload id",
        description="the uploadId that the upload's first chunk answered",
        pattern=r"^[0-9a-f]{1,16}-[0-9a-f]{16}$",
        examples=["1f-8c2e44a90b1d7e35"],
    ),
]
Base64 = Annotated[str, Field(json_schema_extra={"contentEncoding": "base64"})]


class PutArtifactParams(StepRef):
    """Save an artifact whole, or one chunk of it.

    Without ``offset`` or ``append`` the body replaces the artifact atomically. With
    ``offset`` (and ``final``) it is a chunk of an upload staged out of sight: the chunk is
    written at ``offset`` (at most the bytes received so far: no gap, and a resent chunk
    gives the same file), and ``final: true`` publishes the whole atomically. The first
    chunk (offset 0, no ``uploadId``) starts an upload and its answer gives the
    ``uploadId`` that every later chunk carries, so two uploads of one name never mix. With
    ``append: true`` the body is added to the end of the published artifact; an ``offset``
    then must equal its size.
    """

    name: ArtifactName
    text: str | None = None
    base64: Base64 | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    final: bool | None = None
    append: bool = False
    upload_id: UploadId | None = None

    @model_validator(mode="after")
    def _exactly_one_body(self) -> PutArtifactParams:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("give exactly one of 'text' or 'base64'")
        if self.append and self.final is not None:
            raise ValueError("'final' is for chunked uploads ('offset'), not for 'append'")
        if not self.append and (self.offset is None) != (self.final is None):
            raise ValueError("a chunked upload gives both 'offset' and 'final'")
        if self.upload_id is not None and (self.append or self.offset is None):
            raise ValueError("'uploadId' is for the chunks of an upload ('offset', 'final')")
        if not self.append and self.offset and self.upload_id is None:
            raise ValueError(
                "a chunk past offset 0 gives the 'uploadId' that the upload's first chunk returned"
            )
        return self


class GetArtifactParams(StepRef):
    """Read an artifact whole, or the range ``offset``..``offset+length`` of it (cut to the
    daemon's chunk limit: the answer's ``length`` says how much came)."""

    name: ArtifactName
    encoding: Literal["text", "base64"] | None = None
    offset: Annotated[int, Field(ge=0)] = 0
    length: Annotated[int, Field(ge=0)] | None = None
    # The version an earlier chunk answered with: a replaced artifact is then refused.
    version: Annotated[str, Field(max_length=64)] | None = None


class DeleteArtifactParams(StepRef):
    """Delete one artifact of a step (a regular file; a symlink or folder in its place is
    refused and left alone)."""

    name: ArtifactName


class ListArtifactsParams(RunRef):
    step: StepNumber | None = None


class ArtifactInfo(BaseModel):
    """An artifact's name, size and time of last change.

    ``invalidName``: the file's name on disk breaks the naming rules (it is not UTF-8, shown
    then with ``\\xNN`` escapes, or holds a control character...); it is listed, never read.
    ``staged``: the answer to a non-final chunk: ``size`` bytes received, not yet published.
    ``uploadId``: in the answer to a chunk, the upload it belongs to. ``problem``: why a
    listed entry cannot be read (the step's ``artifacts/`` refused, listed as ``artifacts/``).
    """

    runId: str
    step: int
    name: str
    size: int
    modifiedAt: str
    invalidName: bool = False
    staged: bool = False
    uploadId: str | None = None
    problem: str | None = None


class ArtifactDeleted(BaseModel):
    """``artifacts.delete``: the artifact that is gone."""

    runId: str
    step: int
    name: str
    deleted: bool


class ArtifactContent(BaseModel):
    """An artifact's content (or the range asked for): UTF-8 text, or base64 for binary
    data; ``size``, ``modifiedAt`` and ``version`` are the whole artifact's (``version``
    stays while it is appended to and changes when it is replaced), ``offset`` and
    ``length`` the range's (text may hold fewer bytes than asked, to fit one message)."""

    name: str
    size: int
    modifiedAt: str
    version: str
    offset: int
    length: int
    encoding: Literal["text", "base64"]
    text: str | None = None
    base64: str | None = None


def artifact_chunk_limit(max_message_bytes: int) -> int:
    """The most artifact bytes one reply carries: base64 makes 4 of every 3, and the rest of
    the message needs room."""
    return max(1024, (max_message_bytes - 4096) * 3 // 4)
