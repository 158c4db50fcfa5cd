"""``simpleaide llm``: the configured LLM backends."""

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
    """The ``llm`` commands."""
    llm = tree.group("llm", "the configured LLM backends")
    status = llm.add(
        "status",
        "a table of the LLM backends: online, latency, models, error",
        llm_status,
        description="Show each configured LLM backend as the last probe found it: online\n"
        "means reachable, models listed, and the configured model among them.",
    )
    status.add_argument("--probe", action="store_true", help="probe every backend now first")


def llm_status(session: Session, args: Args) -> int:
    """``simpleaide llm status [--probe]``."""
    return reply(args, session.call("llm.probe" if args.probe else "llm.status"), _show_status)


def _show_status(llm: dict[str, Any]) -> None:
    backends = llm.get("backends") or []
    if not backends:
        print("no LLM backends configured ([[llm.backends]] in the config file)")
        return
    rows = [
        [
            b["name"],
            b["kind"],
            "online" if b["online"] else "OFF",
            tables.latency(b.get("latencyMs")),
            ", ".join(b.get("models") or []) or "–",
            b.get("error") or "",
        ]
        for b in backends
    ]
    print(tables.render(["NAME", "KIND", "STATE", "LATENCY", "MODELS", "ERROR"], rows))
    print(f"{llm['online']}/{llm['total']} online")
