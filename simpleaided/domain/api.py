"""The wire contract: parameters and results of every JSON-RPC method, as pydantic models.

The daemon validates requests with these models and ``rpc.discover`` publishes their JSON
schemas, so the published contract and the enforced one are the same objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from simpleaided.domain import names
from simpleaided.domain.models import (
    ErrorMessage,
    OwnerPid,
    RunId,
    RunMetadata,
    RunStatus,
    StepMetadata,
    StepName,
    StepNumber,
    Title,
)
from simpleaided.domain.status import StatusDocument

# The protocol's version, in daemon.info: raised whenever a method, a parameter or a result
# changes in a way an older client or daemon would misread. Clients carry their own copy.
API_VERSION = 1
StartMode = Literal["socket-activation", "systemd", "cli", "foreground"]

MAX_PAGE = 1000
MAX_DAYS = 1_000_000  # for olderThanDays: far beyond any run, and far from float overflow


def _check_workspace(value: str) -> str:
    return names.check_workspace_path(value)


def _check_artifact(value: str) -> str:
    return names.check_artifact_name(value)


WorkspacePath = Annotated[str, AfterValidator(_check_workspace)]
ArtifactName = Annotated[str, AfterValidator(_check_artifact)]
ListedStatus = Literal["pending", "running", "completed", "failed", "cancelled", "corrupt"]


class Params(BaseModel):
    """Base of every parameter object: camelCase names, unknown names refused."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class NoParams(Params):
    """A method that takes no parameters."""


class WorkspaceParams(Params):
    path: WorkspacePath


class ScopeParams(Params):
    """Optionally restrict an answer to one workspace."""

    workspace: WorkspacePath | None = None


class RunScopeParams(Params):
    """Optionally restrict a subscription to one run."""

    run_id: RunId | None = None


class CreateRunParams(Params):
    workspace: WorkspacePath
    title: Title | None = None
    owner_pid: OwnerPid | None = None


class RunRef(Params):
    run_id: RunId


class GetRunParams(RunRef):
    steps: bool = False


class ListRunsParams(Params):
    workspace: WorkspacePath | None = None
    status: ListedStatus | list[ListedStatus] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    before: RunId | None = None

    def statuses(self) -> frozenset[str] | None:
        """The status filter as a set, or ``None`` for all."""
        if self.status is None:
            return None
        return frozenset([self.status] if isinstance(self.status, str) else self.status)


class CompleteRunParams(RunRef):
    """``force``: complete it even with a step open, closing those steps (running ones
    fail, pending ones are skipped); without it that is refused."""

    force: bool = False


class FailRunParams(RunRef):
    error_message: ErrorMessage


class DeleteRunParams(RunRef):
    force: bool = False


class PruneRunsParams(Params):
    """Delete finished runs beyond ``keep`` per workspace or older than ``olderThanDays``."""

    workspace: WorkspacePath | None = None
    keep: Annotated[int, Field(ge=0)] | None = None
    older_than_days: Annotated[float, Field(gt=0, le=MAX_DAYS)] | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _some_limit(self) -> PruneRunsParams:
        if self.keep is None and self.older_than_days is None:
            raise ValueError("give 'keep', 'olderThanDays' or both")
        return self


# -- vault ------------------------------------------------------------------------------

SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN)]
# Length bounds only: a passphrase may hold any character. Never echoed back in errors.
Passphrase = Annotated[str, Field(min_length=1, max_length=1024)]
NewPassphrase = Annotated[str, Field(min_length=8, max_length=1024)]
MAX_SECRET_CHARS = 65536


class VaultInitParams(Params):
    passphrase: NewPassphrase


class VaultUnlockParams(Params):
    passphrase: Passphrase
    # This unlock's idle time (instead of the configured one), still capped by the maximum.
    ttl_seconds: float | None = Field(None, gt=0, le=30 * 86400)


class VaultPassphraseParams(Params):
    passphrase: Passphrase
    new_passphrase: NewPassphrase


class SecretRef(Params):
    name: SecretName


class SetSecretParams(SecretRef):
    value: Annotated[str, Field(max_length=MAX_SECRET_CHARS)]


class VaultStatus(BaseModel):
    """``vault.status``: the state, when it locks, and how it is set up."""

    state: Literal["uninitialized", "locked", "unlocked"]
    autoLockRemainingMs: int | None
    secrets: int | None  # how many, while unlocked
    idleLockSeconds: float | None  # this unlock's idle time (``None``: never)
    maxUnlockSeconds: float | None
    retryAfterMs: int  # how long the next unlock attempt waits (after failed ones)
    file: str


class SecretValue(BaseModel):
    name: str
    value: str


class SecretNames(BaseModel):
    names: list[str]


class SecretStored(BaseModel):
    name: str
    replaced: bool


class SecretDeleted(BaseModel):
    name: str
    deleted: bool


class CreateStepParams(RunRef):
    name: StepName
    start: bool = False


class StepRef(RunRef):
    step: StepNumber


class FailStepParams(StepRef):
    error_message: ErrorMessage
    fail_run: bool = True


class DeleteStepsParams(RunRef):
    from_step: StepNumber


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
    base64: str | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    final: bool | None = None
    append: bool = False
    upload_id: Annotated[str, Field(pattern=r"^[0-9a-f]{1,16}-[0-9a-f]{16}$")] | None = None

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


class ListArtifactsParams(RunRef):
    step: StepNumber | None = None


# Results. Runs and steps on the wire are their store records (every key, nulls included)
# plus where they live.


class StepView(StepMetadata):
    """A step as the wire shows it: its metadata plus its folder name."""

    folder: str


class RunView(RunMetadata):
    """A run as the wire shows it: its metadata plus its workspace (and steps if asked)."""

    workspace: str
    steps: list[StepView] | None = None


class RunRow(BaseModel):
    """One row of ``runs.list``: a summary from memory; corrupt runs carry the reason."""

    id: str
    workspace: str
    status: RunStatus | Literal["corrupt"]
    title: str | None
    startedAt: str | None
    completedAt: str | None
    updatedAt: str | None
    stepCount: int
    errorMessage: str | None


class RunPage(BaseModel):
    """A page of runs, newest first; pass ``nextBefore`` as ``before`` for the next one."""

    runs: list[RunRow]
    nextBefore: str | None


class LatestRun(BaseModel):
    """``runs.latest``: the most recently started run."""

    id: str
    status: str
    startedAt: str
    completedAt: str | None


class StepChange(BaseModel):
    """A step and its run after a step operation."""

    run: RunView
    step: StepView


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


class WorkspaceInfo(BaseModel):
    """A workspace the daemon serves."""

    path: str
    runs: int
    source: Literal["config", "added"]


class Deleted(BaseModel):
    """The result of a delete."""

    runId: str
    deleted: bool


class StatusSnapshot(BaseModel):
    """``status.subscribe``: the document now and the ``seq`` it reflects.

    ``status.changed`` notifications then carry ``{seq, status}`` with a larger ``seq``.
    """

    seq: int
    status: StatusDocument


class RunSubscribed(BaseModel):
    """``runs.subscribe``: ``run.event`` notifications follow, ``{seq, events[, overflow]}``;
    each event has ``seq``, ``type`` (created, status, updated, step, artifact, deleted) and
    ``runId``."""

    seq: int
    runId: str | None


class Unsubscribed(BaseModel):
    """Whether there was a subscription to end."""

    unsubscribed: bool


class PrunedRun(BaseModel):
    """A run that a prune deleted (or, in a dry run, would delete)."""

    id: str
    workspace: str
    status: RunStatus
    startedAt: str | None
    completedAt: str | None


class PruneResult(BaseModel):
    """``runs.prune``: the runs deleted (or that would be), newest first."""

    dryRun: bool
    runs: list[PrunedRun]
    count: int


class DaemonInfo(BaseModel):
    """What ``daemon.info`` tells about the running daemon."""

    version: str
    apiVersion: int
    pid: int
    uid: int
    startMode: StartMode
    socket: str
    configFile: str | None
    configLoadedAt: str
    reloadError: str | None
    env: Literal["DEV", "PROD"]
    startedAt: str
    uptimeMs: int
    workspaces: int
    runs: int
    maxMessageBytes: int
    maxArtifactChunkBytes: int
    framings: list[str]
    warnings: list[str]
    watcher: dict[str, Any]
    # open, limit, accepted, refused (over the limit), refusing (of those, being told now),
    # refusedNoDescriptors, fdLimit
    connections: dict[str, Any]
    # False while a served workspace whose last daemon did not let it go cleanly waits for
    # its walk in depth (at start, done after the first answer)
    storesChecked: bool


def artifact_chunk_limit(max_message_bytes: int) -> int:
    """The most artifact bytes one reply carries: base64 makes 4 of every 3, and the rest of
    the message needs room."""
    return max(1024, (max_message_bytes - 4096) * 3 // 4)


def run_view(
    run: RunMetadata, workspace: str, steps: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A run record as the wire shows it."""
    data = run.model_dump(mode="json", by_alias=True)
    data["workspace"] = workspace
    if steps is not None:
        data["steps"] = steps
    return data


def step_view(step: StepMetadata) -> dict[str, Any]:
    """A step record as the wire shows it."""
    data = step.model_dump(mode="json", by_alias=True)
    data["folder"] = step.dir_name
    return data
