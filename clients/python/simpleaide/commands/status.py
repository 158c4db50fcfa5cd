"""``simpleaide status``, the command status lines run every few seconds.

Kept apart from the other commands so that its process loads only what it needs: the
client, the status line, this package's ``__init__`` and this module (``cli`` parses a plain
``status`` invocation by hand and never builds the command tree for it).
"""

from __future__ import annotations

from simpleaide import paths
from simpleaide.client import DaemonUnreachable
from simpleaide.commands import reply
from simpleaide.session import EXIT_OK, Session, workspace_call
from simpleaide.statusline import FORMATS, chip_line, offline_line

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from simpleaide.commands import Commands
    from simpleaide.session import Args


def register(tree: Commands) -> None:
    """The ``status`` command."""
    status_parser = tree.add(
        "status",
        "one line of status chips (for shells, tmux, waybar)",
        status,
        description="Print the status as one line of chips:\n"
        "  DEV 🟢 / PROD 🔴   environment profile\n"
        "  Vault 🔒 / 🔓 / –   vault locked, unlocked, not set up\n"
        "  DB ✅ / DB OFF      database connection (+ RO when read-only)\n"
        "  LLM 2/3            LLM backends online / configured (– if none)\n"
        "  Run ⏳ N           N runs active; else the last run: ✓ completed, ✗ failed,\n"
        "                     ⊘ cancelled, ⏸ pending, – none\n"
        "  ⚠ N                the daemon has N warnings\n"
        "With --format tmux the chips carry #[fg=...] colours; with --format waybar a JSON\n"
        "object {text, tooltip, class} for a waybar custom module (return-type json).\n"
        "When no daemon answers, tmux and waybar formats print an OFF chip (exit 3 for\n"
        "tmux; 0 for waybar, which hides a module whose command fails).\n\n"
        "  tmux:   set -g status-right '#(simpleaide status --format tmux)'\n"
        '  waybar: "custom/simpleaide": {"exec": "simpleaide status --follow --format waybar",\n'
        '                                "return-type": "json", "restart-interval": 5}\n'
        "With --follow it keeps running and prints a new line at each change (waybar reads\n"
        "each line); when the daemon goes away it shows the OFF chip and waits for a\n"
        "daemon to answer again (it never starts one then).",
    )
    # Forked by status lines every few seconds: no protocol-version round trip.
    status_parser.set_defaults(check_version=False)
    status_parser.add_argument(
        "--format", choices=FORMATS, default="plain", help="plain (default), tmux or waybar"
    )
    status_parser.add_argument(
        "--workspace", metavar="PATH", help="count only the runs of this workspace"
    )
    status_parser.add_argument(
        "--follow",
        action="store_true",
        help="keep running: a new line at each change, from a subscription (no polling); "
        "as 'simpleaide watch'",
    )


def status(session: Session, args: Args) -> int:
    """``simpleaide status``: the status document as chips, a waybar object, or JSON;
    with ``--follow``, again at every change (``simpleaide watch``)."""
    if getattr(args, "follow", False):
        from simpleaide.commands.watch import watch

        return watch(session, args)
    workspace = paths.absolute(args.workspace) if args.workspace else None
    try:
        doc = workspace_call(session, "status.get", workspace)
    except DaemonUnreachable:
        if args.format != "plain" and not args.json:
            print(offline_line(session.socket_path, args.format))
            if args.format == "waybar":
                return EXIT_OK  # waybar hides a module whose command fails: OFF must show
        raise
    return reply(args, doc, lambda doc: print(chip_line(doc, args.format)))
