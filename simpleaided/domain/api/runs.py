"""The ``runs.*`` and ``steps.*`` contract.

Steps share the module of their runs: their wire views nest both ways (a run's view holds its
steps' views, a step change holds the run's view).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from simpleaided.domain.api.base import Params, RunRef, StepRef, WorkspacePath
from simpleaided.domain.api.fields import ErrorMessage, RunId, StepName, StepNumber, Title
from simpleaided.domain.errors import InvalidInput
from simpleaided.domain.models import (
    OwnerPid,
    RunMetadata,
    RunStatus,
    StepMetadata,
)

MAX_PAGE = 1000
MAX_DAYS = 1_000_000  # for olderThanDays: far beyond any run, and far from float overflow

ListedStatus = Literal["pending", "running", "completed", "failed", "cancelled", "corrupt"]


class RunScopeParams(Params):
    """Optionally restrict a subscription to one run."""

    run_id: RunId | None = None


class CreateRunParams(Params):
    workspace: WorkspacePath
    title: Title | None = None
    owner_pid: OwnerPid | None = None


class GetRunParams(RunRef):
    steps: bool = False


class ListRunsParams(Params):
    workspace: WorkspacePath | None = None
    # Bounded: a list of a million bad values would cost pydantic a second to explain.
    status: ListedStatus | Annotated[list[ListedStatus], Field(max_length=16)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    before: RunId | None = None

    def statuses(self) -> frozenset[str] | None:
        """The status filter as a set, or ``None`` for all."""
        if self.status is None:
            return None
        return frozenset([self.status] if isinstance(self.status, str) else self.status)


# Every start of a run id (``names.RUN_ID_RE``), the empty one included: its date, its time,
# then its random part. Matched whole (``fullmatch``).
RUN_ID_PREFIX_RE = re.compile(r"[0-9]{0,8}|[0-9]{8}T[0-9]{0,9}|[0-9]{8}T[0-9]{9}Z(-[0-9a-f]{0,8})?")
MAX_RUN_ID_CHARS = 29
DEFAULT_MATCHES = 10


def _check_run_id_prefix(value: str) -> str:
    if len(value) > MAX_RUN_ID_CHARS or not RUN_ID_PREFIX_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid run id prefix {value[:80]!r}: give the start of a run id, "
            "e.g. 20261124T1015 of 20261124T101500123Z-1a2b3c4d"
        )
    return value


RunIdPrefix = Annotated[
    str,
    Field(
        json_schema_extra={
            "title": "run id prefix",
            "pattern": f"^(?:{RUN_ID_PREFIX_RE.pattern})$",
            "maxLength": MAX_RUN_ID_CHARS,
        }
    ),
    AfterValidator(_check_run_id_prefix),
]


class ResolveRunsParams(Params):
    """The runs whose id starts with ``prefix`` (an empty one: every run), in ``workspace``
    if given; at most ``limit`` of them are listed."""

    prefix: RunIdPrefix
    workspace: WorkspacePath | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = DEFAULT_MATCHES


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


class CreateStepParams(RunRef):
    name: StepName
    start: bool = False


class FailStepParams(StepRef):
    error_message: ErrorMessage
    fail_run: bool = True


class DeleteStepsParams(RunRef):
    from_step: StepNumber


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


class RunMatches(BaseModel):
    """``runs.resolve``: the runs whose id starts with the prefix, newest first (at most
    ``limit``), and how many match in all: one is the run meant, more is ambiguous."""

    runs: list[RunRow]
    count: int


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


class Deleted(BaseModel):
    """The result of a delete."""

    runId: str
    deleted: bool


class RunSubscribed(BaseModel):
    """``runs.subscribe``: ``run.event`` notifications follow, ``{seq, events[, overflow]}``;
    each event has ``seq``, ``type`` (created, status, updated, step, artifact, deleted) and
    ``runId``."""

    seq: int
    runId: str | None


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
