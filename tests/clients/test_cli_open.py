"""``simpleaide open``: the console's URL, with its token, handed to the browser or printed.

The URL building and the browser commands are checked on their own; the rest runs the
installed command in a sandbox against the real daemon it starts, and reaches the HTTP side
the way a browser would (``urllib``, on the printed address).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
import signal
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from simpleaide.commands.open import (
    BROWSER_GRACE_SECONDS,
    BrowserError,
    browser_commands,
    console_url,
    file_url,
    launch,
    write_redirect,
)
from tests.support.sandbox import Sandbox
from tests.support.waiting import eventually_blocking

TOKEN = re.compile(r"^[0-9a-f]{64}$")
URL = "http://127.0.0.1:8000/#token=" + "ab" * 32 + "&area=runs"


# -- the URL and the browser commands, on their own -----------------------------------------


def test_the_token_and_the_area_travel_in_the_fragment() -> None:
    url = console_url("http://127.0.0.1:41234/", "0f" * 32, "vault")
    assert url == f"http://127.0.0.1:41234/#token={'0f' * 32}&area=vault"
    # A fragment already there is replaced, not extended.
    assert (
        console_url("http://127.0.0.1:1/#/runs", "aa", "db")
        == "http://127.0.0.1:1/#token=aa&area=db"
    )


def test_browser_lists_substitution_and_the_xdg_open_fallback(tmp_path: Path) -> None:
    env = {"BROWSER": "firefox --new-window %s:lynx::w3m -o 'a b' 100%%:echo %s%%s%%"}
    assert browser_commands(URL, env) == [
        ["firefox", "--new-window", URL],
        ["lynx", URL],
        ["w3m", "-o", "a b", "100%", URL],
        ["echo", f"{URL}%s%"],
    ]
    # Unset or blank: xdg-open from PATH, when there is one.
    xdg = tmp_path / "xdg-open"
    xdg.write_text("#!/bin/sh\n")
    xdg.chmod(0o755)
    assert browser_commands(URL, {"BROWSER": " ", "PATH": str(tmp_path)}) == [[str(xdg), URL]]
    assert browser_commands(URL, {"PATH": str(tmp_path / "none")}) == []


def recorder(folder: Path, name: str, status: int = 0) -> Path:
    """A browser that writes its arguments, one a line, to ``name``.txt and exits ``status``."""
    script = folder / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "$0.txt"\nexit {status}\n')
    script.chmod(0o755)
    return script


def test_launch_tries_each_browser_until_one_succeeds(tmp_path: Path) -> None:
    broken = recorder(tmp_path, "broken", status=3)
    works = recorder(tmp_path, "works")
    env = {"BROWSER": f"{tmp_path}/missing:{broken} %s:{works} --tab"}
    assert launch(URL, env, grace=30) == f"{works} --tab URL"  # a failing one exits at once
    assert Path(f"{broken}.txt").read_text() == f"{URL}\n"
    assert Path(f"{works}.txt").read_text() == f"--tab\n{URL}\n"


def test_when_no_browser_opens_it_the_reasons_are_given_without_the_token(
    tmp_path: Path,
) -> None:
    broken = recorder(tmp_path, "broken", status=3)
    with pytest.raises(BrowserError) as raised:
        launch(URL, {"BROWSER": f"{tmp_path}/missing %s:{broken} --x=%s:%s"}, grace=30)
    message = raised.value.message
    assert message.startswith("the browser ($BROWSER) did not open the console: ")
    assert f"'{tmp_path}/missing URL' cannot be run (No such file or directory)" in message
    assert f"'{broken} --x=URL' failed with exit status 3" in message
    assert "ab" * 32 not in message and URL not in message
    with pytest.raises(BrowserError, match="no browser to open the console with"):
        launch(URL, {"PATH": str(tmp_path / "none")}, grace=30)


def test_the_page_is_private_whatever_the_umask_and_only_in_a_private_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    old = os.umask(0)
    try:
        page = Path(write_redirect(str(folder), URL))
    finally:
        os.umask(old)
    assert page == folder / "console.html"
    assert redirect_target(page) == URL
    assert [p.name for p in folder.iterdir()] == ["console.html"]
    assert file_url(str(page)) == page.as_uri()
    # A link planted under the page's name is replaced, not followed.
    (folder / "console.html").unlink()
    (folder / "console.html").symlink_to(tmp_path / "elsewhere.html")
    write_redirect(str(folder), URL)
    assert not (tmp_path / "elsewhere.html").exists() and redirect_target(page) == URL
    # A folder others may write to is refused: the URL is printed to paste instead.
    folder.chmod(0o770)
    with pytest.raises(BrowserError, match="not yours alone"):
        write_redirect(str(folder), URL)


# -- against the real daemon -----------------------------------------------------------------


def get(url: str, token: str | None = None) -> int:
    """The status of ``GET url``, with ``Authorization: Bearer token`` when given."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def printed(sandbox: Sandbox, *args: str) -> tuple[str, str, str]:
    """``simpleaide open --print ARGS``: the console's base URL, its token and area."""
    result = sandbox.ok("open", "--print", *args)
    assert result.stdout.count("\n") == 1, result
    parts = urlsplit(result.stdout.strip())
    fragment = parse_qs(parts.fragment, strict_parsing=True)
    assert sorted(fragment) == ["area", "token"], result
    return f"{parts.scheme}://{parts.netloc}/", fragment["token"][0], fragment["area"][0]


def test_print_starts_the_daemon_and_gives_a_url_the_shim_accepts(sandbox: Sandbox) -> None:
    assert not sandbox.socket.exists()
    base, token, area = printed(sandbox)
    assert sandbox.socket.is_socket()  # the daemon was started for it
    assert area == "runs"
    parts = urlsplit(base)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port
    assert TOKEN.match(token)
    assert get(f"{base}healthz") == 200
    assert get(f"{base}api/status", token) == 200
    assert get(f"{base}api/status") == 401
    assert get(f"{base}api/status", "0" * 64) == 401
    # The token is derived from the one in the 0600 file beside the socket, for this port
    # alone, and a second open reuses the running HTTP side and the same token.
    token_file = sandbox.socket.parent / "http-token"
    assert token == port_token(token_file.read_text().strip(), parts.port)
    assert token_file.read_text().strip() != token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert printed(sandbox, "db") == (base, token, "db")
    # --json with --print: the whole URL is the answer too.
    answer = sandbox.ok("open", "--print", "--json", "llm").json()
    assert answer["url"] == base and answer["area"] == "llm"
    assert answer["consoleUrl"] == f"{base}#token={token}&area=llm"


def port_token(base: str, port: int | None) -> str:
    """The token a shim on 127.0.0.1:``port`` accepts, derived from the file's."""
    return hmac.new(base.encode(), f"127.0.0.1:{port}".encode(), hashlib.sha256).hexdigest()


def redirect_target(page: Path) -> str:
    """Where the page the browser was given sends it, checked to be private (0600, in the
    socket's folder) and to say the same in its link."""
    st = os.lstat(page)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    text = page.read_text()
    refresh = re.findall(r'<meta http-equiv="refresh" content="0;url=([^"]*)">', text)
    link = re.findall(r'<a href="([^"]*)">', text)
    assert len(refresh) == 1 and link == refresh, text
    return html.unescape(refresh[0])


def test_open_hands_the_browser_a_page_and_never_the_token(sandbox: Sandbox) -> None:
    # Any local user reads a command's arguments (ps, /proc/PID/cmdline) as long as the
    # browser runs: it is given a file:// page that sends it on, never the token.
    browser = recorder(sandbox.root, "browser")
    result = sandbox.ok("open", "vault", env={"BROWSER": str(browser)})
    base, token, _ = printed(sandbox)
    opened = Path(f"{browser}.txt").read_text().splitlines()
    page = sandbox.socket.parent / "console.html"
    assert opened == [page.as_uri()]
    assert token not in opened[0] and "token" not in opened[0]
    assert Path(unquote(urlsplit(opened[0]).path)) == page
    assert redirect_target(page) == f"{base}#token={token}&area=vault"
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700  # the token file's folder
    assert token not in result.stdout + result.err
    assert result.stdout == f"opened the vault area of the console at {base} (through {page})\n"
    # The browser may not be able to read the page (a snap or flatpak one): what to do then.
    assert result.err == (
        "simpleaide: if the browser says it cannot find the file, run "
        "`simpleaide open --print` and paste the URL it prints\n"
    )
    # %s places the URL; --json tells what opened it, still without the token. The page is
    # rewritten (a new file renamed over the old: never half written, no temporary left).
    inode = page.stat().st_ino
    result = sandbox.ok("open", "shell", "--json", env={"BROWSER": f"{browser} --app=%s"})
    assert Path(f"{browser}.txt").read_text() == f"--app={page.as_uri()}\n"
    assert redirect_target(page) == f"{base}#token={token}&area=shell"
    assert page.stat().st_ino != inode
    assert not [p for p in page.parent.iterdir() if p.name.startswith(".console.html")]
    assert token not in result.stdout + result.err
    assert result.json() == {
        "url": base,
        "area": "shell",
        "tokenRotated": False,
        "opened": f"{browser} --app=URL",
        "page": str(page),
    }


def test_a_browser_that_keeps_running_is_neither_waited_for_nor_ended(
    sandbox: Sandbox,
) -> None:
    """A browser command that starts the browser and runs as long as it does (Firefox not
    yet running, say): open returns once the command has had a moment to fail, and leaves
    it running."""
    browser = sandbox.root / "staying"
    pid_file = sandbox.root / "staying.pid"
    browser.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec sleep 60\n')
    browser.chmod(0o755)
    started = time.monotonic()
    result = sandbox.ok("open", "llm", env={"BROWSER": f"{browser} --new-window %s"})
    took = time.monotonic() - started
    pid = int(eventually_blocking(lambda: pid_file.exists() and pid_file.read_text().strip(), 10))
    try:
        assert result.stdout.startswith("opened the llm area of the console at "), result
        assert took < BROWSER_GRACE_SECONDS + 10, took  # not the browser's 60 s
        os.kill(pid, 0)  # still running: not ended by open
        assert os.getsid(pid) == pid  # in a session of its own, away from the terminal
    finally:
        os.kill(pid, signal.SIGTERM)


def test_a_browser_that_fails_is_said_and_the_url_printed_to_paste(sandbox: Sandbox) -> None:
    broken = recorder(sandbox.root, "broken", status=4)
    result = sandbox.run("open", "env", env={"BROWSER": str(broken)})
    assert result.code == 1, result
    base, token, _ = printed(sandbox)
    assert result.stdout == f"{base}#token={token}&area=env\n"
    assert result.err == (
        f"simpleaide: the browser ($BROWSER) did not open the console: '{broken} URL' failed "
        "with exit status 4; open this address in a browser:\n"
    )
    # No browser at all (no $BROWSER, no xdg-open on PATH): the same, in other words.
    empty = sandbox.root / "bin"
    empty.mkdir()
    result = sandbox.run("open", env={"BROWSER": "", "PATH": str(empty)})
    assert result.code == 1, result
    assert result.stdout == f"{base}#token={token}&area=runs\n"
    assert result.err.startswith("simpleaide: no browser to open the console with: ")
    assert token not in result.err


def test_rotate_token_gives_a_new_token_and_the_old_one_is_refused(sandbox: Sandbox) -> None:
    base, old, _ = printed(sandbox)
    assert get(f"{base}api/status", old) == 200
    answer = sandbox.ok("open", "--print", "--rotate-token", "--json").json()
    assert answer["tokenRotated"] is True and answer["url"] == base
    new = parse_qs(urlsplit(answer["consoleUrl"]).fragment)["token"][0]
    assert TOKEN.match(new) and new != old
    assert get(f"{base}api/status", old) == 401
    assert get(f"{base}api/status", new) == 200
    token_file = (sandbox.socket.parent / "http-token").read_text().strip()
    assert new == port_token(token_file, urlsplit(base).port) != token_file
    assert printed(sandbox) == (base, new, "runs")


def test_an_unknown_area_is_a_usage_error(sandbox: Sandbox) -> None:
    result = sandbox.run("open", "bogus", "--print")
    assert result.code == 2
    assert result.out == b""
    assert "argument AREA: invalid choice: 'bogus'" in result.err
    assert not sandbox.socket.exists()  # nothing was asked of a daemon


def test_no_spawn_without_a_daemon_exits_3(sandbox: Sandbox) -> None:
    result = sandbox.run("open", "--print", "--no-spawn")
    assert result.code == 3
    assert result.out == b""
    assert not sandbox.socket.exists()


def test_status_shows_the_http_side_that_open_started(sandbox: Sandbox) -> None:
    base, _, _ = printed(sandbox)
    api = sandbox.ok("status", "--json").json()["api"]
    assert api["enabled"] is True, api
    assert api["url"].rstrip("/") == base.rstrip("/")
    assert api["port"] == urlsplit(base).port


def test_help_explains_the_token_and_the_browser(sandbox: Sandbox) -> None:
    text = sandbox.ok("open", "--help").stdout
    assert text.startswith("usage: simpleaide open")
    for words in ("0600", "http-token", "beside the daemon's socket", "$BROWSER", "xdg-open"):
        assert words in text, words
    assert "--rotate-token" in text and "lose" in text
    assert "the console's base URL (url)" in text  # what --json prints, for this command
    assert "print the daemon's JSON result" not in text
    assert re.search(r"^\s+open\s+open the web console", sandbox.ok("--help").stdout, re.M)
    assert not sandbox.socket.exists()
