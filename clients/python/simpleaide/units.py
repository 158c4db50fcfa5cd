"""``simpleaide daemon install-units`` and ``uninstall-units``: the systemd user units.

The templates, ``simpleaided.socket`` and ``simpleaided.service``, come from inside the
installed package (the wheel carries them as ``simpleaide/systemd``), else from the
repository's top-level ``systemd/`` folder (an editable install, a checkout). Installing writes
them with ``ExecStart=`` pointing at the ``simpleaided`` that belongs to this installation.
Neither command talks to the daemon.
"""

from __future__ import annotations

import os
import sys

from simpleaide import paths
from simpleaide.session import EXIT_OK, CliError, Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are not evaluated at run time
    from collections.abc import Mapping

    from simpleaide.session import Args

UNIT_NAMES = ("simpleaided.socket", "simpleaided.service")
UNIT_MODE = 0o644
# The first line of both templates. A file is taken for ours when its first line starts with
# OWNED_PREFIX, so that a later rewording of the marker still recognises older installs.
MARKER = "# simpleaided user unit, installed by `simpleaide daemon install-units`."
OWNED_PREFIX = "# simpleaided user unit"

ENABLE_LINE = "systemctl --user enable --now simpleaided.socket"
RELOAD_LINE = "systemctl --user daemon-reload"
STOP_LINE = "systemctl --user stop simpleaided.socket simpleaided.service"
DISABLE_LINE = "systemctl --user disable --now simpleaided.socket simpleaided.service"


def default_unit_dir(environ: Mapping[str, str] = os.environ) -> str:
    """``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user`` by default), where the
    user's systemd looks for the user's own units."""
    base = environ.get("XDG_CONFIG_HOME")
    if not (base and os.path.isabs(base)):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "systemd", "user")


def template_dir() -> str:
    """The folder holding the unit templates: packaged, else the repository's ``systemd/``."""
    here = os.path.dirname(os.path.realpath(__file__))
    packaged = os.path.join(here, "systemd")
    if os.path.isdir(packaged):
        return packaged
    # clients/python/simpleaide/ -> the repository root
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(here))), "systemd")


def daemon_command() -> list[str]:
    """The command that runs this installation's daemon, as absolute argv.

    The ``simpleaided`` script beside the interpreter comes first: ``sys.executable`` is not
    resolved, since a venv's ``bin/python`` is a symlink out of the venv (pipx installs are
    venvs too). Then ``simpleaided`` on ``PATH``, then ``python -m simpleaided``.
    """
    python = sys.executable
    if python and os.path.isabs(python):
        beside = os.path.join(os.path.dirname(python), "simpleaided")
        if os.path.isfile(beside) and os.access(beside, os.X_OK):
            return [beside]
    import shutil

    found = shutil.which("simpleaided")
    if found:
        return [os.path.abspath(found)]
    if python and os.path.isabs(python):
        return [python, "-m", "simpleaided"]
    raise CliError("cannot find simpleaided: not beside this Python, not on PATH")


def exec_start(argv: list[str]) -> str:
    """The ``ExecStart=`` line running ``argv`` (a program path and fixed, plain arguments).

    systemd expands ``%`` specifiers on the whole line, so ``%`` is doubled; a word holding
    whitespace is double-quoted. ``$`` stays single: systemd substitutes variables in the
    arguments but never in the program's path, where ``$$`` would be taken literally. Quotes,
    backslashes and control characters are refused in a program path ("Executable name
    contains special characters"), so such a path cannot be written at all.
    """
    words = []
    for word in argv:
        unsafe = any(c in "\"'\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in word)
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            unsafe = True
        if unsafe:
            raise CliError(
                f"cannot write {word!r} in a systemd unit (quotes, backslashes, control "
                "characters and undecodable bytes are not allowed in a program path)"
            )
        word = word.replace("%", "%%")
        if any(c in word for c in " \t"):
            word = f'"{word}"'
        words.append(word)
    return "ExecStart=" + " ".join(words)


def render(name: str, exec_line: str) -> str:
    """The unit ``name`` as install-units writes it: the template with ``exec_line``."""
    path = os.path.join(template_dir(), name)
    try:
        with open(path, encoding="utf-8") as f:
            template = f.read()
    except OSError as exc:
        raise CliError(f"cannot read the unit template {path}: {exc.strerror}") from None
    lines = template.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    if name.endswith(".service"):
        if len(starts) != 1:
            raise CliError(f"the unit template {path} must hold exactly one ExecStart= line")
        lines[starts[0]] = exec_line + "\n"
    return "".join(lines)


def _read(path: str) -> str | None:
    """The text of the file at ``path``, or ``None`` if there is none."""
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _is_ours(text: str) -> bool:
    return text.startswith(OWNED_PREFIX)


def _shorten(line: str, width: int = 60) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _difference(old: str, new: str) -> str:
    """Where ``old`` first differs from ``new``, in a few words."""
    if not _is_ours(old):
        return "it was not installed by simpleaide"
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for number, (was, wanted) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if was != wanted:
            return f"line {number} is {_shorten(was)!r}, not {_shorten(wanted)!r}"
    if len(old_lines) != len(new_lines):
        return f"it has {len(old_lines)} lines, not {len(new_lines)}"
    return "its line endings differ"


def _write_atomically(folder: str, name: str, text: str) -> None:
    """Write ``folder/name`` through a temporary file, so it is never seen half-written."""
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), UNIT_MODE)  # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(temporary, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _unit_dir(args: Args) -> str:
    return paths.absolute(args.dir) if args.dir else default_unit_dir()


def install_units(session: Session, args: Args) -> int:
    """``simpleaide daemon install-units``."""
    folder = _unit_dir(args)
    exec_line = exec_start(daemon_command())
    wanted = {name: render(name, exec_line) for name in UNIT_NAMES}
    present = {name: _read(os.path.join(folder, name)) for name in UNIT_NAMES}
    changed = [name for name in UNIT_NAMES if present[name] != wanted[name]]
    if not changed:
        print(f"already installed in {folder}: {', '.join(UNIT_NAMES)}")
        print(exec_line)
        print(f"to start it now and at every login: {ENABLE_LINE}")
        return EXIT_OK
    differing = [(name, old) for name in changed if (old := present[name]) is not None]
    if differing and not args.force:
        first, old = differing[0]
        also = f" (and {differing[1][0]})" if len(differing) > 1 else ""
        raise CliError(
            f"{os.path.join(folder, first)} exists and differs{also}: "
            f"{_difference(old, wanted[first])}; use --force to replace it"
        )
    try:
        os.makedirs(folder, exist_ok=True)
        for name in changed:
            _write_atomically(folder, name, wanted[name])
    except OSError as exc:
        where = exc.filename or folder
        raise CliError(f"cannot write the units in {where}: {exc.strerror}") from None
    for name in UNIT_NAMES:
        if name not in changed:
            verb = "unchanged"
        else:
            verb = "wrote" if present[name] is None else "replaced"
        print(f"{verb} {os.path.join(folder, name)}")
    print(exec_line)
    print("now run:")
    print(f"  {RELOAD_LINE}")
    print(f"  {ENABLE_LINE}")
    return EXIT_OK


def _enable_links(folder: str) -> list[str]:
    """The symlinks in ``folder``'s ``*.wants``/``*.requires`` folders that point at our
    units in ``folder`` (as ``systemctl --user enable`` made them)."""
    real_folder = os.path.realpath(folder)
    found = []
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    for entry in entries:
        links_dir = os.path.join(folder, entry)
        if not entry.endswith((".wants", ".requires")) or not os.path.isdir(links_dir):
            continue
        for name in UNIT_NAMES:
            link = os.path.join(links_dir, name)
            if not os.path.islink(link):
                continue
            target = os.path.join(links_dir, os.readlink(link))
            if (
                os.path.basename(target) == name
                and os.path.realpath(os.path.dirname(target)) == real_folder
            ):
                found.append(link)
    return found


def uninstall_units(session: Session, args: Args) -> int:
    """``simpleaide daemon uninstall-units``."""
    folder = _unit_dir(args)
    units = [os.path.join(folder, name) for name in UNIT_NAMES]
    installed = []
    for path in units:
        text = _read(path)
        if text is None:
            continue
        if not _is_ours(text):
            raise CliError(
                f"{path} was not installed by simpleaide (its first line does not start with "
                f"{OWNED_PREFIX!r}); left it and the other unit alone"
            )
        installed.append(path)
    links = _enable_links(folder)
    if not installed and not links:
        print(f"no simpleaided units in {folder}")
        return EXIT_OK
    for path in [*links, *installed]:
        try:
            os.unlink(path)
        except OSError as exc:
            raise CliError(f"cannot remove {path}: {exc.strerror}") from None
        print(f"removed {path}")
    for link in links:
        try:
            os.rmdir(os.path.dirname(link))  # only if that left it empty
        except OSError:
            pass
    print("if it is still running, stop it; then let systemd forget the units:")
    print(f"  {STOP_LINE}")
    print(f"  {RELOAD_LINE}")
    return EXIT_OK


INSTALL_HELP = f"""\
Write the systemd user units simpleaided.socket and simpleaided.service into DIR
(default: $XDG_CONFIG_HOME/systemd/user, i.e. ~/.config/systemd/user). systemd then
listens on $XDG_RUNTIME_DIR/simpleaide/daemon.sock, the CLI's default socket, and starts
the daemon at the first connection (socket activation), restarts it if it fails, and
sends its log to the journal (journalctl --user -u simpleaided).

ExecStart= points at the simpleaided of this installation: the one beside this Python
(a venv, pipx), else the one on PATH, else "python -m simpleaided". Files that exist and
differ are left alone unless --force; nothing talks to the daemon. Then run:

  {RELOAD_LINE}
  {ENABLE_LINE}"""

UNINSTALL_HELP = f"""\
Remove simpleaided.socket and simpleaided.service from DIR (default: the folder
install-units uses) and the *.wants/ links "systemctl --user enable" made for them. A
file of that name that install-units did not write is left alone (exit 1). The whole
sequence, which stops the daemon first:

  {DISABLE_LINE}
  simpleaide daemon uninstall-units
  {RELOAD_LINE}"""
