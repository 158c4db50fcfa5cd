"""The ``status`` command, the one status lines run every few seconds.

Kept apart from the other commands so that its process loads only what it needs: the
client, the chips and this module (``cli`` parses a plain ``status`` invocation by hand).
"""

from __future__ import annotations

from simpleaide import chips, fastjson, paths
from simpleaide.client import DaemonUnreachable
from simpleaide.safetext import escape, json_safe
from simpleaide.session import EXIT_OK, Session, print_json, workspace_call

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from simpleaide.session import Args


def status(session: Session, args: Args) -> int:
    """``simpleaide status``: the status document as chips, a waybar object, or JSON;
    with ``--follow``, again at every change (``simpleaide watch``)."""
    if getattr(args, "follow", False):
        from simpleaide.watch import watch

        return watch(session, args)
    workspace = paths.absolute(args.workspace) if args.workspace else None
    try:
        doc = workspace_call(session, "status.get", workspace)
    except DaemonUnreachable:
        if args.format != "plain" and not args.json:
            shown = chips.offline(session.socket_path, args.format)
            print(escape(shown) if isinstance(shown, str) else json_safe(fastjson.dumps(shown)))
            if args.format == "waybar":
                return EXIT_OK  # waybar hides a module whose command fails: OFF must show
        raise
    if args.json:
        print_json(doc)
    elif args.format == "tmux":
        print(escape(chips.tmux(doc)))
    elif args.format == "waybar":
        print(json_safe(fastjson.dumps(chips.waybar(doc))))
    else:
        print(escape(chips.plain(doc)))
    return EXIT_OK
