"""``simpleaide open``: the web console in the user's browser, with the key it needs.

The daemon's HTTP side answers only requests that carry its token (a 256-bit secret kept in
a 0600 file beside the socket). ``open`` asks the daemon for the console's address and the
token (``http.open``, which starts the HTTP side if it is off), puts the token in the URL's
fragment (which browsers never send over the network; the page moves it into its storage and
off the address bar) and has the browser open it: ``$BROWSER``, else ``xdg-open``.

The browser is not given that URL: a command's arguments are anyone's to read (``ps``,
``/proc/PID/cmdline``) for as long as the browser runs. It is given ``file://`` and a page,
``console.html``, that only sends it on to the URL (as Jupyter does): written beside the token
file, in the socket's folder that is the user's alone, 0600, rewritten (atomically) each time.

The token is a secret: it is printed only by ``--print``, whose point it is, and when no
browser could open the console (the user must paste the URL then); never in a message.
"""

from __future__ import annotations

import os
import sys

from simpleaide.commands import reply
from simpleaide.safetext import escape
from simpleaide.session import EXIT_ERROR, CliError, Session

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Mapping
    from typing import Any

    from simpleaide.commands import Commands
    from simpleaide.session import Args

AREAS = ("runs", "vault", "db", "llm", "shell", "env")
REDIRECT_FILE = "console.html"  # beside the socket: the page the browser is given
DEFAULT_AREA = "runs"
METHOD_NOT_FOUND = -32601  # JSON-RPC's code for a method the daemon does not know
# How long a browser command is watched: one that fails says so at once (it exits non-zero);
# one still running then has the page (a browser started by it), and is left running.
BROWSER_GRACE_SECONDS = 1.5

DESCRIPTION = """\
Open the web console in your browser, on AREA (default: runs). A daemon is started
first if none answers, and its HTTP side if it is off (on 127.0.0.1, a free port).

The console needs a key: a token derived from the daemon's 256-bit secret, kept in
a file only you can read (mode 0600), http-token, beside the daemon's socket, for
the address the console is served on (it opens nothing on another port). Any local
user can reach a loopback port, so nothing but /healthz answers without it. open
puts the token in the address's fragment (#token=...), which the browser never sends
over the network; the page keeps it (browser storage for 127.0.0.1:PORT) and removes
it from the address bar. Treat a printed URL as a password.

The browser is not given the URL itself (any local user can read a command's
arguments): it is given a page, console.html beside http-token (0600, rewritten each
time), which sends it on to the URL. A browser that cannot read that folder (a snap
or flatpak one, say): use --print and paste the URL.

The browser: $BROWSER, a list of commands separated by ':' tried in turn (%s in one
stands for the URL, else the URL is added at the end; %% is a literal %), else
xdg-open. Each is started on its own, detached from the terminal: one that exits
with an error within a moment is said and the next is tried; one that succeeds, or
is still running then, has the page. A browser that runs inside the terminal (lynx,
w3m) cannot be used this way: use --print. If none can open it, the URL is printed
for you to paste, and the exit status is 1.
"""

EPILOG = """\
examples:
  simpleaide open                  the runs area in your browser
  simpleaide open vault
  simpleaide open --print          print the URL (with its token) instead
  BROWSER='firefox --new-window %s' simpleaide open llm
  simpleaide open --rotate-token   a new token: consoles already open must be reopened
"""


def register(tree: Commands) -> None:
    """The ``open`` command."""
    command = tree.add(
        "open",
        "open the web console in your browser (with its token)",
        open_console,
        description=DESCRIPTION,
        json_output=False,
    )
    command.epilog = EPILOG
    command.add_argument(
        "--json",
        action="store_true",
        help="print the answer as JSON: the console's base URL (url), the area, tokenRotated, "
        "and the command that opened it (opened) and the page it was given (page); with "
        "--print, or when no browser could open it, the whole URL instead (consoleUrl, token "
        "included)",
    )
    command.add_argument(
        "area",
        nargs="?",
        choices=AREAS,
        default=DEFAULT_AREA,
        metavar="AREA",
        help=f"the console's area to show: {', '.join(AREAS)} (default: {DEFAULT_AREA})",
    )
    command.add_argument(
        "--print",
        action="store_true",
        help="print the URL, token included, instead of opening a browser",
    )
    command.add_argument(
        "--rotate-token",
        action="store_true",
        help="make a new token first (rewrites http-token): consoles already open lose "
        "their connection and must be opened again with simpleaide open",
    )


def open_console(session: Session, args: Args) -> int:
    """``simpleaide open [AREA] [--print] [--rotate-token]``."""
    from simpleaide.client import RpcError

    try:
        if args.rotate_token:
            session.call("http.rotateToken")
        answer = session.call("http.open")
    except RpcError as exc:
        if exc.code == METHOD_NOT_FOUND:
            raise CliError(
                "this daemon has no web console (it runs an older version); "
                "restart it to run the installed one: simpleaide daemon stop"
            ) from None
        raise
    base, token = _address(answer)
    url = console_url(base, token, args.area)
    result: dict[str, Any] = {
        "url": base,
        "area": args.area,
        "tokenRotated": bool(args.rotate_token),
    }
    if args.print:
        return reply(args, {**result, "consoleUrl": url}, lambda _: print(escape(url)))
    session.close()  # not held open while the browser starts
    try:
        page = write_redirect(os.path.dirname(session.socket_path), url)
        opened_with = launch(file_url(page))
    except BrowserError as exc:
        # Said before the URL, which goes to stdout for the user to paste.
        print(
            f"simpleaide: {escape(exc.message)}; open this address in a browser:", file=sys.stderr
        )
        reply(args, {**result, "opened": None, "consoleUrl": url}, lambda _: print(escape(url)))
        return EXIT_ERROR
    status = reply(
        args,
        {**result, "opened": opened_with, "page": page},
        lambda _: print(
            escape(f"opened the {args.area} area of the console at {base} (through {page})")
        ),
    )
    # The browser may yet fail to read the page (a snap or flatpak one cannot read the
    # socket's folder) and nothing tells us: say where it is (above), and what to do then.
    print(
        "simpleaide: if the browser says it cannot find the file, run "
        "`simpleaide open --print` and paste the URL it prints",
        file=sys.stderr,
    )
    return status


def _address(answer: Any) -> tuple[str, str]:
    """The console's base URL and the token from ``http.open``'s result."""
    if isinstance(answer, dict):
        url, token = answer.get("url"), answer.get("token")
        if isinstance(url, str) and url and isinstance(token, str) and token:
            return url, token
    raise CliError("the daemon's answer to http.open holds no console URL")


def console_url(base: str, token: str, area: str) -> str:
    """``base`` (the daemon's ``http://127.0.0.1:PORT/``) with the token and the area in its
    fragment: ``http://127.0.0.1:PORT/#token=…&area=runs``."""
    from urllib.parse import urlencode

    return f"{base.partition('#')[0]}#{urlencode({'token': token, 'area': area})}"


# -- the page the browser is given -----------------------------------------------------------


def redirect_page(url: str) -> str:
    """An HTML page that sends the browser on to ``url`` at once (a link if it does not)."""
    from html import escape as html_escape

    target = html_escape(url, quote=True)
    return (
        "<!doctype html>\n"
        '<html><head><meta charset="utf-8">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f'<meta http-equiv="refresh" content="0;url={target}">\n'
        "<title>SimpleAide console</title></head>\n"
        f'<body><p><a href="{target}">Open the SimpleAide console</a></p></body></html>\n'
    )


def file_url(path: str) -> str:
    """``file://`` and ``path`` (absolute), percent-encoded."""
    from urllib.parse import quote

    return "file://" + quote(os.fsencode(path))


def write_redirect(folder: str, url: str) -> str:
    """Write ``folder/console.html`` (``redirect_page(url)``) and return its path.

    ``folder`` is the socket's (the token file's): it must be ours and not writable by
    others, or ``BrowserError``. The page is written in full to a new 0600 file (a random
    name, ``O_EXCL``, never following a link) and renamed over the old one: never readable
    by others, never seen half written."""
    import contextlib
    import secrets

    page = redirect_page(url).encode()
    try:
        parent = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise BrowserError(f"cannot open {folder} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(parent)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise BrowserError(
                f"{folder} is not yours alone: the console's page is not written there"
            )
        temporary = f".{REDIRECT_FILE}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600, dir_fd=parent)
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(page)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, REDIRECT_FILE, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            where = os.path.join(folder, REDIRECT_FILE)
            raise BrowserError(f"cannot write {where} ({exc.strerror or exc})") from None
    finally:
        os.close(parent)
    return os.path.join(folder, REDIRECT_FILE)


# -- the browser ------------------------------------------------------------------------------


class BrowserError(Exception):
    """No browser command opened the console; ``message`` says why, without the URL."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def browser_commands(url: str, environ: Mapping[str, str] = os.environ) -> list[list[str]]:
    """The commands to try in turn, each an argument list holding ``url``: those of
    ``$BROWSER`` (``:``-separated; ``%s`` stands for the URL, ``%%`` for ``%``; without
    ``%s`` the URL comes last), else ``xdg-open URL`` when it is installed, else none."""
    import shlex

    chosen = environ.get("BROWSER", "")
    if not chosen.strip():
        import shutil

        found = shutil.which("xdg-open", path=environ.get("PATH"))
        return [[found, url]] if found else []
    commands = []
    for entry in chosen.split(":"):
        try:
            words = shlex.split(entry)
        except ValueError:  # unbalanced quotes: shown as it is by launch's error
            words = [entry]
        if not words:
            continue
        if any("%s" in word for word in words):
            words = [_substitute(word, url) for word in words]
        else:
            words = [*[word.replace("%%", "%") for word in words], url]
        commands.append(words)
    return commands


def _substitute(word: str, url: str) -> str:
    """``word`` with ``%s`` replaced by ``url`` and ``%%`` by ``%``, left to right."""
    out = []
    i = 0
    while i < len(word):
        pair = word[i : i + 2]
        if pair == "%s":
            out.append(url)
            i += 2
        elif pair == "%%":
            out.append("%")
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _shown(argv: list[str], url: str) -> str:
    """A browser command as a message may show it: the URL (and its token) left out."""
    return " ".join(word.replace(url, "URL") for word in argv)


# Browsers still running when ``launch`` returned: held so that they are never collected
# (and warned about) while this process lives; they are not ours to wait for or to end.
_LEFT_RUNNING: list[Any] = []


def launch(
    url: str, environ: Mapping[str, str] = os.environ, grace: float = BROWSER_GRACE_SECONDS
) -> str:
    """Open ``url`` with the first browser command that succeeds and return that command
    (the URL left out); ``BrowserError`` says why none did.

    Each command is started detached (a session of its own, no terminal: its input and
    output go nowhere), and watched for ``grace`` seconds, never longer: one that exits 0
    has handed the URL on (``xdg-open``, a browser already running), one still running has
    the page (a browser it started, which may run for hours: this command does not wait for
    it, nor end it), one that exits otherwise has failed and the next is tried."""
    import subprocess

    commands = browser_commands(url, environ)
    if not commands:
        raise BrowserError("no browser to open the console with: set $BROWSER or install xdg-open")
    reasons = []
    for argv in commands:
        shown = _shown(argv, url)
        try:
            browser = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            reasons.append(f"{shown!r} cannot be run ({exc.strerror or exc})")
            continue
        try:
            status = browser.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _LEFT_RUNNING.append(browser)
            return shown
        if status == 0:
            return shown
        if status < 0:
            reasons.append(f"{shown!r} was ended by signal {-status}")
        else:
            reasons.append(f"{shown!r} failed with exit status {status}")
    source = "$BROWSER" if environ.get("BROWSER", "").strip() else "xdg-open"
    message = f"the browser ({source}) did not open the console: {'; '.join(reasons)}"
    raise BrowserError(message.replace(url, "URL"))  # the token stays out of messages
