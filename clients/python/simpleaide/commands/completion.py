"""Shell completion for bash, zsh and fish, by ``argcomplete``: ``simpleaide completion SHELL``
prints the script to load, and that script runs ``simpleaide`` again at each Tab with
``_ARGCOMPLETE`` set, which ``autocomplete`` answers.

Commands, options and choices come from the command tree itself; run ids (``RUN_ID``), step
folders and names (``STEP``) and artifact names (``NAME``) from the daemon, which is asked
with a short timeout and never started: without one, those complete to nothing, silently.
File names are offered only where a file or folder is meant (``FILE``, ``PATH``, ``DIR``,
a terminal's command); free text (a title, a message, a name to create, SQL, a number)
completes to nothing, in bash too (its script does not fall back to file names).

``argcomplete`` is imported only when completing or printing the script: ``simpleaide
status`` (status lines run it every few seconds) never pays for it.
"""

from __future__ import annotations

from simpleaide import paths, tables
from simpleaide.commands.runids import LATEST_WORDS, is_run_id, is_run_id_start

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    import argparse
    from typing import Any

    from simpleaide.client import Client
    from simpleaide.commands import Commands
    from simpleaide.session import Args, Session

SHELLS = ("bash", "zsh", "fish")
# A Tab must answer at once: a daemon that does not answer within this gets no say.
ASK_SECONDS = 0.5
# The most run ids offered; past it the words typed so far are offered too, so that no shell
# fills in a start that only the newest runs share.
MAX_RUN_IDS = 100
# Arguments that name a file or folder (by their metavar, or dest): completed with file
# names, argcomplete's default. Every other argument taking a value is free text.
FILE_METAVARS = ("FILE", "PATH", "DIR")
FILE_DESTS = ("command",)  # term new -- COMMAND [ARG...]

INSTALL = """\
Load it in your shell's start-up file:
  bash  ~/.bashrc:   eval "$(simpleaide completion bash)"
  zsh   ~/.zshrc:    autoload -U compinit && compinit   (if not done already)
                     eval "$(simpleaide completion zsh)"
  fish  run once:    simpleaide completion fish > ~/.config/fish/completions/simpleaide.fish
Run ids, steps and artifact names complete from the daemon when it runs (never started)."""


def register(tree: Commands) -> None:
    """The ``completion`` command."""
    command = tree.add(
        "completion",
        "print the shell completion script for bash, zsh or fish",
        print_script,
        description=f"Print the script that makes Tab complete simpleaide's commands, options,\n"
        f"run ids, steps and artifact names in SHELL.\n\n{INSTALL}",
        connection=False,
    )
    command.add_argument("shell", metavar="SHELL", choices=SHELLS, help=" | ".join(SHELLS))


def print_script(session: Session, args: Args) -> int:
    """``simpleaide completion SHELL``."""
    from argcomplete.shell_integration import shellcode

    # use_defaults=False: bash does not fall back to file names when nothing completes (a
    # title, a message): where a file is meant, argcomplete offers the files itself.
    print(shellcode(["simpleaide"], use_defaults=False, shell=args.shell), end="")
    return 0


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request (``_ARGCOMPLETE`` is set) and exit."""
    import argcomplete

    _attach_completers(parser, ())
    # Options are offered once a '-' is typed: a bare Tab lists what the command needs.
    argcomplete.autocomplete(parser, always_complete_options=False)


def _attach_completers(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
    """Give every ``RUN_ID``, and the ``STEP`` and artifact ``NAME`` of the commands that
    take them, its completer, through the whole command tree; free text, none (no file
    names)."""
    import argparse

    for action in parser._actions:
        completer: Any = None
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _attach_completers(sub, (*path, name))
        elif action.dest == "run_id" or action.metavar == "RUN_ID":
            completer = complete_run_ids
        elif action.dest == "step" and path[:1] in (("steps",), ("artifacts",)):
            completer = complete_steps
        elif action.dest == "name" and path in (("artifacts", "get"), ("artifacts", "rm")):
            completer = complete_artifact_names
        elif action.nargs == 0 or action.choices is not None:
            pass  # a flag; or choices, which argcomplete offers
        elif action.metavar not in FILE_METAVARS and action.dest not in FILE_DESTS:
            completer = complete_nothing
        if completer is not None:
            action.completer = completer  # type: ignore[attr-defined]  # argcomplete reads it


def complete_nothing(**_: Any) -> list[str]:
    """Free text (a title, a message, SQL, a number): nothing to offer, file names least.

    Not ``argcomplete.SuppressCompleter``: on an option, that hides the option itself from
    the options offered after ``-``."""
    return []


def _client(parsed_args: Any) -> Client:
    from simpleaide.client import Client

    return Client(paths.socket_path(getattr(parsed_args, "socket", None)), timeout=ASK_SECONDS)


def complete_run_ids(prefix: str, parsed_args: Any, **_: Any) -> dict[str, str]:
    """Run ids starting with ``prefix`` (newest first, each with its status and title), and
    ``latest`` / ``@``."""
    offered = dict.fromkeys(LATEST_WORDS, "the newest run of this workspace")
    if not is_run_id_start(prefix):
        return offered
    try:
        with _client(parsed_args) as client:
            found = client.call("runs.resolve", prefix=prefix, limit=MAX_RUN_IDS)
    except Exception:  # a completion never shows an error
        return offered
    for run in found["runs"]:
        title = " ".join(str(run.get("title") or "").split())
        offered[run["id"]] = f"{run['status']} · {title}" if title else run["status"]
    left = int(found["count"]) - len(found["runs"])
    if left > 0 and prefix:
        offered[prefix] = f"and {left} older runs: type more of the id"
    return offered


def complete_steps(prefix: str, parsed_args: Any, **_: Any) -> dict[str, str]:
    """The steps of the run given before: folders (``02_code``), or names once a letter is
    typed."""
    try:
        with _client(parsed_args) as client:
            run_id = _run_id(client, parsed_args)
            if run_id is None:
                return {}
            steps = client.call("steps.list", runId=run_id)
    except Exception:  # a completion never shows an error
        return {}
    by_name = prefix[:1].isalpha()
    offered = {}
    for step in steps:
        word = step.get("name") if by_name else step.get("folder")
        if word:
            offered[str(word)] = str(step.get("status", ""))
    return offered


def complete_artifact_names(prefix: str, parsed_args: Any, **_: Any) -> dict[str, str]:
    """The artifacts of the run and step given before (names that can be read)."""
    try:
        with _client(parsed_args) as client:
            run_id = _run_id(client, parsed_args)
            if run_id is None:
                return {}
            number = _step_number(client, run_id, str(getattr(parsed_args, "step", "") or ""))
            if number is None:
                return {}
            listed = client.call("artifacts.list", runId=run_id, step=number)
    except Exception:  # a completion never shows an error
        return {}
    return {
        str(item["name"]): tables.size(int(item["size"]))
        for item in listed
        if not item.get("invalidName") and not item.get("problem")
    }


def _run_id(client: Client, parsed_args: Any) -> str | None:
    """The run that the ``RUN_ID`` typed names, as the command would resolve it; ``None`` if
    it names none (or several)."""
    text = str(getattr(parsed_args, "run_id", "") or "")
    if text in LATEST_WORDS:
        workspace = paths.find_workspace()
        if workspace is None:
            return None
        latest = client.call("runs.latest", workspace=workspace)
        return str(latest["id"]) if latest else None
    if is_run_id(text):
        return text
    if not text or not is_run_id_start(text):
        return None
    found = client.call("runs.resolve", prefix=text, limit=1)
    return str(found["runs"][0]["id"]) if found["count"] == 1 else None


def _step_number(client: Client, run_id: str, step: str) -> int | None:
    """The number of the step typed (a number, a folder or a name)."""
    if step.isascii() and step.isdigit():
        return int(step)
    head, sep, _ = step.partition("_")
    if sep and len(head) == 2 and head.isascii() and head.isdigit():
        return int(head)
    found = [s["number"] for s in client.call("steps.list", runId=run_id) if s["name"] == step]
    return int(found[0]) if len(found) == 1 else None
