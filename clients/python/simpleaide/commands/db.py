"""``simpleaide db``: the database of the active profile."""

from __future__ import annotations

from simpleaide import tables
from simpleaide.commands import reply
from simpleaide.session import Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from typing import Any

    from simpleaide.commands import Commands
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``db`` commands."""
    db = tree.group("db", "the database of the active profile")
    db.add(
        "status",
        "connected or not, type, read-only, latency, last error",
        db_status,
        description="Show the database of the active profile (DEV or PROD) as the daemon's\n"
        "last probe found it. In PROD the connection is read-only in the database itself.",
    )


def db_status(session: Session, args: Args) -> int:
    """``simpleaide db status``."""
    return reply(args, session.call("db.status"), _show_status)


def _show_status(db: dict[str, Any]) -> None:
    print(
        tables.fields(
            [
                ("database", "connected" if db["connected"] else "OFF"),
                ("type", db.get("type") or "–"),
                ("env", str(db.get("env"))),
                ("read-only", "yes" if db.get("readOnly") else "no"),
                ("latency", tables.latency(db.get("latencyMs"))),
                ("error", db.get("error") or "none"),
                ("checked", tables.local_time(db.get("checkedAt"))),
            ]
        )
    )
