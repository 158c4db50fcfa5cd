"""``simpleaide workspaces``: the workspaces the daemon serves."""

from __future__ import annotations

import sys

from simpleaide import paths, tables
from simpleaide.commands import reply
from simpleaide.safetext import escape
from simpleaide.session import Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``workspaces`` commands."""
    workspaces = tree.group("workspaces", "the workspaces the daemon serves")
    workspaces.add("ls", "list served workspaces", workspaces_ls)
    add = workspaces.add("add", "serve a workspace (creates PATH/.simpleaide/runs)", workspaces_add)
    add.add_argument("path", metavar="PATH")
    rm = workspaces.add(
        "rm",
        "stop serving a workspace (its files stay)",
        workspaces_rm,
        description="stop serving a workspace (its files stay). It stays unserved, also\n"
        "after a restart and whatever command is run inside it, until 'simpleaide\n"
        "workspaces add PATH' or a 'simpleaide runs create' there serves it again.",
    )
    rm.add_argument("path", metavar="PATH")


def workspaces_ls(session: Session, args: Args) -> int:
    """``simpleaide workspaces ls``."""

    def show(items: list[dict[str, Any]]) -> None:
        if items:
            rows = [[w["path"], str(w["runs"]), w["source"]] for w in items]
            print(tables.render(["PATH", "RUNS", "SOURCE"], rows, elastic=0))
        else:
            print("no workspaces served yet", file=sys.stderr)

    return reply(args, session.call("workspaces.list"), show)


def workspaces_add(session: Session, args: Args) -> int:
    """``simpleaide workspaces add``."""
    info = session.call("workspaces.add", path=paths.absolute(args.path))
    return reply(
        args,
        info,
        lambda info: print(
            escape(f"serving {info['path']} ({tables.plural(int(info['runs']), 'run')})")
        ),
    )


def workspaces_rm(session: Session, args: Args) -> int:
    """``simpleaide workspaces rm``."""
    result = session.call("workspaces.remove", path=paths.absolute(args.path))
    return reply(
        args,
        result,
        lambda result: print(escape(f"{result['path']} is no longer served (its files stay)")),
    )
