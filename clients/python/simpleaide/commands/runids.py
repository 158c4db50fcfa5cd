"""A command's ``RUN_ID``: a whole run id, any unique start of one (as git and docker take
an abbreviated id), or ``latest`` / ``@`` for the newest run of the current workspace.

``cli.run`` resolves it here, once, for every command that takes one; it is imported only
then (``simpleaide status`` never pays for it).
"""

from __future__ import annotations

import re

from simpleaide.session import CliError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.session import Session

RUN_ID_RE = re.compile(r"[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}")
# Every start of a run id, the empty one included: its date, its time, its random part (as
# the daemon's runs.resolve accepts).
RUN_ID_START_RE = re.compile(r"[0-9]{0,8}|[0-9]{8}T[0-9]{0,9}|[0-9]{8}T[0-9]{9}Z(-[0-9a-f]{0,8})?")
RUN_ID_CHARS = 29

# ``RUN_ID`` words that mean the newest run of the current workspace.
LATEST_WORDS = ("latest", "@")
# How many candidates an ambiguous prefix lists before "and N more".
CANDIDATES_SHOWN = 5


class AmbiguousRunId(CliError):
    """A ``RUN_ID`` prefix that several runs share; ``candidates`` are lines, one per run."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a whole run id (``20261124T101500123Z-1a2b3c4d``)."""
    return RUN_ID_RE.fullmatch(text) is not None


def is_run_id_start(text: str) -> bool:
    """Whether ``text`` may begin a run id (the empty text included)."""
    return len(text) <= RUN_ID_CHARS and RUN_ID_START_RE.fullmatch(text) is not None


def resolve_run_id(session: Session, text: str) -> str:
    """The run id that a command's ``RUN_ID`` names: a whole id as it is (no round trip:
    ids all have one length, so a whole id is the start of no other); ``latest`` or ``@``,
    the newest run of the current workspace; the start of an id, the one run whose id
    starts so (``runs.resolve``, from the daemon's memory; else the one run folder in the
    current workspace's ``.simpleaide/runs/`` whose name starts so, when the daemon does
    not serve that workspace: the command then says so, as for a whole id). Anything else
    is left as it is, for the command to refuse in words.

    No run matching, or several, is a ``CliError`` (``AmbiguousRunId`` lists them)."""
    if text in LATEST_WORDS:
        return newest_run(session, text)
    if not text or is_run_id(text) or not is_run_id_start(text):
        return text
    from simpleaide.client import RpcError

    try:
        found = session.call("runs.resolve", prefix=text, limit=CANDIDATES_SHOWN)
    except RpcError as exc:
        if exc.code == -32601:  # a daemon from before runs.resolve: it judges the id itself
            return text
        raise
    runs: list[dict[str, Any]] = found["runs"]
    count = int(found["count"])
    if count == 1 and runs:
        return str(runs[0]["id"])
    if count == 0:
        return _unserved_run_id(session, text)
    lines = [_candidate(run) for run in runs]
    if count > len(runs):
        lines.append(f"and {count - len(runs)} more")
    raise AmbiguousRunId(
        f"{text!r} is the start of {count} run ids; give more of the one you mean:", lines
    )


def _unserved_run_id(session: Session, text: str) -> str:
    """The run that ``text`` starts the id of, matching none the daemon serves: one whose
    folder lies in the current workspace, if the daemon does not serve that (never served,
    removed, or held by another daemon); the command's call then says where it is and what
    to do, as for a whole id. Else a ``CliError``; for several, ``AmbiguousRunId`` (the one
    meant then says what to do: what depends on why the daemon does not serve it)."""
    import os

    from simpleaide import paths

    nothing = CliError(f"no run matches {text!r}: no run id starts so (see simpleaide runs ls)")
    workspace = paths.find_workspace()
    if workspace is None:
        raise nothing
    try:
        names = os.listdir(os.path.join(workspace, paths.WORKSPACE_MARKER, "runs"))
    except OSError:
        raise nothing from None
    found = sorted(
        (name for name in names if name.startswith(text) and is_run_id(name)), reverse=True
    )
    if not found:
        raise nothing
    canonical = os.path.realpath(workspace)
    served = session.call("workspaces.list")
    if any(isinstance(w, dict) and w.get("path") == canonical for w in served or []):
        raise nothing  # served: the daemon knows its runs (these are being made or gone)
    if len(found) == 1:
        return found[0]
    lines = [f"{run_id}  {canonical}" for run_id in found[:CANDIDATES_SHOWN]]
    if len(found) > CANDIDATES_SHOWN:
        lines.append(f"and {len(found) - CANDIDATES_SHOWN} more")
    raise AmbiguousRunId(
        f"{text!r} is the start of {len(found)} run ids in workspace {canonical}, which the "
        "daemon does not serve; give more of the one you mean:",
        lines,
    )


def _candidate(run: dict[str, Any]) -> str:
    """One line of an ambiguous prefix's list: id, workspace, title, status."""
    title = " ".join(str(run.get("title") or "").split())
    if len(title) > 40:
        title = f"{title[:39]}…"
    return "  ".join((run["id"], run.get("workspace") or "?", title or "-", run["status"]))


def newest_run(session: Session, word: str = "latest") -> str:
    """The id of the newest run of the current workspace (the nearest folder at or above
    the current one holding ``.simpleaide/``), for ``RUN_ID`` ``latest`` or ``@``."""
    from simpleaide import paths
    from simpleaide.session import workspace_call

    here = paths.current_folder()  # a deleted one: said so (cli.main)
    workspace = paths.find_workspace(here)
    if workspace is None:
        skipped = paths.passed_over(here)
        if skipped:
            raise CliError(f"{word!r} is the newest run of the current workspace, but {skipped}")
        raise CliError(
            f"{word!r} is the newest run of the current workspace, but no folder at or "
            f"above {here} holds .simpleaide/; give a run id, or run this in a workspace"
        )
    skipped = paths.passed_over(here)
    if skipped:  # else the newest run of the workspace further up would seem to be meant
        import sys

        from simpleaide.safetext import escape

        print(escape(f"simpleaide: {skipped}"), file=sys.stderr)
    latest = workspace_call(session, "runs.latest", workspace)
    if not latest:
        raise CliError(f"{word!r}: workspace {workspace} has no runs yet")
    return str(latest["id"])
