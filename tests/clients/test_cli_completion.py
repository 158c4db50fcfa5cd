"""Shell completion (``simpleaide completion bash|zsh|fish``): the real shells, completing
commands, run ids, steps and artifact names from a real daemon; the installed command."""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyte

from tests.support.sandbox import Sandbox, simpleaide_command, status_path_imports
from tests.support.tools import require

BOUND = 15.0  # seconds: generous, only a failing test waits this long
BASH_TAB = r"""
source <(simpleaide completion bash)
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_POINT=${#COMP_LINE}
function=$(complete -p simpleaide | sed -E 's/.* -F ([^ ]+) .*/\1/')
"$function" simpleaide "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def shell_env(sandbox: Sandbox) -> dict[str, str]:
    """The sandbox's environment, with the installed ``simpleaide`` first on the PATH (the
    completion script runs it by name, as a user's shell does)."""
    bin_dir = str(Path(simpleaide_command()).parent)
    return {**sandbox.env, "PATH": f"{bin_dir}:{sandbox.env.get('PATH', '')}"}


def bash_tab(sandbox: Sandbox, line: str, cwd: Path | None = None) -> list[str]:
    """What bash's Tab offers for ``line``: the function ``simpleaide completion bash``
    registers, called as bash calls it (``COMP_LINE``, ``COMP_POINT``, ``COMP_WORDS``)."""
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_TAB],
        env={**shell_env(sandbox), "COMP_LINE": line},
        cwd=cwd or sandbox.cwd,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=True,
    )
    return [word for word in proc.stdout.splitlines() if word]


class ShellPty:
    """An interactive shell on a PTY of its own, its screen read through pyte."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.screen = pyte.Screen(200, 30)
        self.stream = pyte.ByteStream(self.screen)
        self.proc = subprocess.Popen(
            ["setsid", "--ctty", "--", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm"},
            cwd=cwd,
        )
        os.close(slave)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def until_prompt(self) -> None:
        """Until the shell has drawn its prompt: keys typed before its line editor starts
        may be lost."""
        self.until(lambda: bool(self.text.strip()), "a prompt")

    def until_shown(self, *texts: str) -> None:
        self.until(lambda: all(text in self.text for text in texts), repr(texts))

    def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + BOUND
        while not check():
            left = deadline - time.monotonic()
            assert left > 0, f"{what} not shown within {BOUND} s:\n{self.text}"
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.stream.feed(os.read(self.master, 65536))
                except OSError:
                    raise AssertionError(f"the shell exited before {what}:\n{self.text}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(BOUND)
        os.close(self.master)


def runs_with_a_step(sandbox: Sandbox) -> tuple[Path, list[str]]:
    """A workspace with two runs; the first has step 01_plan with artifact notes.md."""
    ws = sandbox.workspace()
    first = sandbox.new_run(ws, "--title", "first")
    second = sandbox.new_run(ws, "--title", "second")
    sandbox.ok("steps", "add", first, "plan", "--start")
    sandbox.ok("artifacts", "put", first, "plan", "notes.md", input=b"n")
    return ws, [first, second]


def test_the_script_is_printed_for_each_shell(sandbox: Sandbox) -> None:
    for shell in ("bash", "zsh", "fish"):
        script = sandbox.ok("completion", shell).stdout
        assert "simpleaide" in script and "_ARGCOMPLETE" in script, shell
    assert "complete -c simpleaide" in sandbox.ok("completion", "fish").stdout.replace(
        "--command", "-c"
    )
    wrong = sandbox.run("completion", "tcsh")
    assert wrong.code == 2 and "invalid choice" in wrong.err
    assert 'eval "$(simpleaide completion bash)"' in sandbox.ok("completion", "--help").stdout
    assert not sandbox.socket.exists()  # printing a script starts no daemon


def test_bash_completes_commands_run_ids_steps_and_artifacts(sandbox: Sandbox) -> None:
    ws, (first, second) = runs_with_a_step(sandbox)
    assert bash_tab(sandbox, "simpleaide ru") == ["runs "]
    assert "watch" in bash_tab(sandbox, "simpleaide runs ")
    assert bash_tab(sandbox, "simpleaide completion z") == ["zsh "]
    offered = bash_tab(sandbox, "simpleaide runs show ")
    assert set(offered) == {"latest", "@", first, second}
    assert offered.index(second) < offered.index(first)  # newest first
    assert bash_tab(sandbox, f"simpleaide runs show {first[:-2]}") == [f"{first} "]
    # Options come once a dash is typed.
    assert "--json" in bash_tab(sandbox, "simpleaide runs show -")
    # A step and an artifact of the run given before them, however the run was given.
    assert bash_tab(sandbox, f"simpleaide steps done {first} ") == ["01_plan "]
    assert bash_tab(sandbox, f"simpleaide steps done {first[:-2]} p") == ["plan "]
    assert bash_tab(sandbox, f"simpleaide artifacts get {first} 1 ") == ["notes.md "]
    assert bash_tab(sandbox, f"simpleaide artifacts rm {first} plan n") == ["notes.md "]
    assert bash_tab(sandbox, "simpleaide steps done @ ", cwd=ws) == []  # second: no steps


def test_bash_on_a_terminal_fills_in_a_run_id(sandbox: Sandbox) -> None:
    """The real thing: an interactive bash, the script sourced, Tab pressed."""
    _, (first, second) = runs_with_a_step(sandbox)
    shell = ShellPty(["bash", "--norc", "--noprofile", "-i"], shell_env(sandbox), sandbox.cwd)
    try:
        shell.until_prompt()
        shell.type('source <(simpleaide completion bash); echo LOAD""ED\n')
        shell.until_shown("LOADED")
        shell.type(f"simpleaide runs show {first[:-3]}\t")
        shell.until_shown(f"simpleaide runs show {first}")
        shell.type("\x15simpleaide runs show \t\t")  # Ctrl-U, then a list of every choice
        shell.until_shown(first, second, "latest")
    finally:
        shell.close()


def test_zsh_on_a_terminal_fills_in_a_run_id(sandbox: Sandbox) -> None:
    require("zsh")
    _, (first, second) = runs_with_a_step(sandbox)
    shell = ShellPty(["zsh", "-f", "-i"], shell_env(sandbox), sandbox.cwd)
    try:
        shell.until_prompt()
        shell.type(
            "autoload -U compinit && compinit -u -D; "
            'eval "$(simpleaide completion zsh)"; echo LOAD""ED\n'
        )
        shell.until_shown("LOADED")
        shell.type(f"simpleaide runs show {first[:-3]}\t")
        shell.until_shown(f"simpleaide runs show {first}")
        shell.type("\x15simpleaide runs show \t")  # zsh lists the choices, described
        shell.until_shown(first, "-- running · first", second, "-- pending · second", "latest")
    finally:
        shell.close()


def test_fish_completes_run_ids_with_their_status(sandbox: Sandbox) -> None:
    require("fish")
    _, (first, second) = runs_with_a_step(sandbox)
    script = sandbox.root / "simpleaide.fish"
    script.write_text(sandbox.ok("completion", "fish").stdout)
    proc = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C 'simpleaide runs show 2'"],
        env=shell_env(sandbox),
        cwd=sandbox.cwd,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=True,
    )
    offered = dict(line.split("\t", 1) for line in proc.stdout.splitlines())
    assert offered == {first: "running · first", second: "pending · second"}


def fish_tab(sandbox: Sandbox, line: str, cwd: Path | None = None) -> dict[str, str]:
    """What fish offers for ``line``: each word with its description."""
    script = sandbox.root / "simpleaide.fish"
    script.write_text(sandbox.ok("completion", "fish").stdout)
    proc = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C {shlex.quote(line)}"],
        env=shell_env(sandbox),
        cwd=cwd or sandbox.cwd,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=True,
    )
    return dict((line.split("\t", 1) + [""])[:2] for line in proc.stdout.splitlines())


def test_fish_describes_artifacts_by_their_size(sandbox: Sandbox) -> None:
    require("fish")
    _, (first, _) = runs_with_a_step(sandbox)
    sandbox.ok("artifacts", "put", first, "plan", "log.txt", input=b"x" * 3000)
    offered = fish_tab(sandbox, f"simpleaide artifacts get {first} 1 ")
    assert offered == {"notes.md": "1 B", "log.txt": "2.9 KiB"}


def a_folder_with_one_file(sandbox: Sandbox) -> Path:
    folder = sandbox.root / "files"
    folder.mkdir()
    (folder / "zebra-notes.txt").write_text("z")
    return folder


FREE_TEXT = [
    "simpleaide runs create --title ",
    "simpleaide runs fail @ -m ",
    "simpleaide steps add @ ",
    "simpleaide artifacts put @ 1 ",  # the name of the artifact to make
    "simpleaide vault set ",
    "simpleaide db query ",
    "simpleaide db rows people --where ",
    "simpleaide runs prune --keep ",
]


def test_free_text_completes_to_nothing_and_files_where_a_file_is_meant(
    sandbox: Sandbox,
) -> None:
    folder = a_folder_with_one_file(sandbox)
    for line in FREE_TEXT:
        assert bash_tab(sandbox, line, cwd=folder) == [], line
    # The options themselves are still offered.
    assert bash_tab(sandbox, "simpleaide runs create --tit", cwd=folder) == ["--title "]
    assert "--message" in bash_tab(sandbox, "simpleaide runs fail @ --", cwd=folder)
    # A file is meant: its name is offered.
    for line in (
        "simpleaide artifacts put @ 1 notes.md zeb",
        "simpleaide artifacts get @ 1 notes.md -o zeb",
        "simpleaide db export people --output zeb",
        "simpleaide workspaces add zeb",
    ):
        assert bash_tab(sandbox, line, cwd=folder) == ["zebra-notes.txt "], line
    if shutil.which("fish"):
        assert fish_tab(sandbox, "simpleaide runs create --title ", cwd=folder) == {}
        assert list(fish_tab(sandbox, "simpleaide artifacts put @ 1 n.md ", cwd=folder)) == [
            "zebra-notes.txt"
        ]


def test_bash_on_a_terminal_offers_no_file_names_for_free_text(sandbox: Sandbox) -> None:
    """bash's own fallback to file names, when the completion offers nothing, is off."""
    folder = a_folder_with_one_file(sandbox)
    shell = ShellPty(["bash", "--norc", "--noprofile", "-i"], shell_env(sandbox), folder)
    try:
        shell.until_prompt()
        shell.type('source <(simpleaide completion bash); echo LOAD""ED\n')
        shell.until_shown("LOADED")
        # Tab, then the line is echoed (Ctrl-A, "echo LINE:"), as completed.
        shell.type("simpleaide runs create --title \t\x01echo LINE: \n")
        shell.type("simpleaide steps add @ \t\x01echo LINE: \n")
        shell.type("simpleaide artifacts put @ 1 n.md zeb\t\x01echo LINE: \n")
        shell.type('echo DO""NE\n')
        shell.until_shown("\nDONE")  # the output, not the line typed
        shown = [line for line in shell.text.splitlines() if line.startswith("LINE: ")]
        assert shown == [
            "LINE: simpleaide runs create --title",
            "LINE: simpleaide steps add @",
            "LINE: simpleaide artifacts put @ 1 n.md zebra-notes.txt",
        ]
    finally:
        shell.close()


def test_without_a_daemon_run_ids_complete_to_nothing_and_none_is_started(
    sandbox: Sandbox,
) -> None:
    assert bash_tab(sandbox, "simpleaide runs show ") == ["latest", "@"]
    assert bash_tab(sandbox, "simpleaide steps done 2026 ") == []
    assert not sandbox.socket.exists()


def test_status_never_imports_argcomplete(sandbox: Sandbox) -> None:
    """Status lines run ``simpleaide status`` every few seconds: completion costs it nothing."""
    imported = status_path_imports(sandbox)
    assert not {name for name in imported if "argcomplete" in name or "runids" in name}
