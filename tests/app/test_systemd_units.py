"""The systemd user units: ``systemd-analyze verify`` accepts them, as shipped and as
``simpleaide daemon install-units`` writes them, and rejects broken copies; install-units and
uninstall-units write, refuse and remove what they should.

``systemd-analyze verify`` needs no running systemd: it loads the units into a private manager
in test mode. ``--user`` makes that a user manager, which needs an absolute
``XDG_RUNTIME_DIR`` (``%t``; without one it fails with "Failed to lookup RuntimeDirectory
path") and takes ``%h`` from ``HOME``; the sandbox gives both, and ``XDG_CONFIG_HOME`` is the
first folder of its unit search path. ``--man=no``: the ``Documentation=`` pages are systemd's
own, which slim CI images do not carry. ``--generators=no``: generators read the machine's
configuration, not ours. verify exits 0 on many problems it reports (an unknown key, a bad
value: "ignoring"), so the positive tests require an empty stderr as well.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from simpleaide import units
from simpleaide.session import CliError
from tests.support.paths import REPO
from tests.support.sandbox import Result, Sandbox

ROOT = REPO
TEMPLATES = ROOT / "systemd"
NAMES = ("simpleaided.socket", "simpleaided.service")
VENV_DAEMON = Path(sys.executable).parent / "simpleaided"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: install systemd (the tests need its tools only)"
    return found


def verify(sandbox: Sandbox, *unit_args: str | Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze --user verify`` in the sandbox's HOME and XDG folders."""
    env = {
        **sandbox.env,
        "SYSTEMD_LOG_LEVEL": "info",
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_PAGER": "",
        "LC_ALL": "C.UTF-8",
    }
    return subprocess.run(
        [
            systemd_analyze(),
            "--user",
            "--man=no",
            "--generators=no",
            "verify",
            *map(str, unit_args),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=sandbox.cwd,
        timeout=60,
        check=False,
    )


def assert_verified(done: subprocess.CompletedProcess[str]) -> None:
    """verify passed with nothing to say: no error, no warning."""
    assert (done.returncode, done.stderr, done.stdout) == (0, "", ""), done


def unit_dir(sandbox: Sandbox) -> Path:
    return Path(sandbox.env["XDG_CONFIG_HOME"]) / "systemd" / "user"


def exec_start(service: Path) -> str:
    lines = [line for line in service.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return lines[0].removeprefix("ExecStart=")


def link_daemon_into_home(sandbox: Sandbox) -> None:
    """``~/.local/bin/simpleaided``, where the shipped template looks, is this venv's."""
    bin_dir = Path(sandbox.env["HOME"]) / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "simpleaided").symlink_to(VENV_DAEMON)


def broken_copy(sandbox: Sandbox, name: str, old: str, new: str) -> Path:
    """The shipped units in a new folder, with ``old`` replaced by ``new`` in ``name``."""
    folder = sandbox.root / "broken"
    folder.mkdir()
    for unit in NAMES:
        text = (TEMPLATES / unit).read_text()
        if unit == name:
            assert old in text
            text = text.replace(old, new, 1)
        (folder / unit).write_text(text)
    return folder


def refusal(result: Result) -> str:
    """The one line a refused command printed on stderr."""
    assert result.code == 1, str(result)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simpleaide: "), str(result)
    return lines[0]


# -- systemd-analyze verify ---------------------------------------------------------------


def test_the_shipped_templates_pass_verify(sandbox: Sandbox) -> None:
    link_daemon_into_home(sandbox)
    assert_verified(verify(sandbox, TEMPLATES / NAMES[0], TEMPLATES / NAMES[1]))


def test_the_shipped_template_runs_the_daemon_from_home(sandbox: Sandbox) -> None:
    # Without ~/.local/bin/simpleaided the same check fails: %h is really resolved.
    done = verify(sandbox, TEMPLATES / NAMES[0], TEMPLATES / NAMES[1])
    assert done.returncode != 0
    home = sandbox.env["HOME"]
    assert f"Command {home}/.local/bin/simpleaided is not executable" in done.stderr


def test_units_installed_in_a_folder_pass_verify(sandbox: Sandbox) -> None:
    folder = sandbox.root / "units"
    sandbox.ok("daemon", "install-units", "--dir", str(folder))
    assert exec_start(folder / "simpleaided.service") == str(VENV_DAEMON)
    assert_verified(verify(sandbox, folder / NAMES[0], folder / NAMES[1]))


def test_units_installed_by_default_are_where_systemd_looks(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "install-units")
    assert sorted(p.name for p in unit_dir(sandbox).iterdir()) == sorted(NAMES)
    # By name: found through the user manager's search path, which starts at XDG_CONFIG_HOME.
    assert_verified(verify(sandbox, *NAMES))


@pytest.mark.parametrize(
    ("name", "old", "new", "problem"),
    [
        (
            "simpleaided.service",
            "Type=notify",
            "Type=notfy",
            "Failed to parse service type, ignoring: notfy",
        ),
        (
            "simpleaided.service",
            "KillMode=mixed\n",
            "KillMode=mixed\nFrobnicate=yes\n",
            "Unknown key 'Frobnicate' in section [Service]",
        ),
        (
            "simpleaided.service",
            "ExecStart=%h/.local/bin/simpleaided",
            "ExecStart=/nonexistent/simpleaided",
            "Command /nonexistent/simpleaided is not executable",
        ),
        (
            "simpleaided.service",
            "\nOOMPolicy=continue\n",
            "\nOOMPolicy=continue\nNoNewPrivileges=maybe\n",
            "Failed to parse boolean value, ignoring: maybe",
        ),
        ("simpleaided.socket", "ListenStream=", "ListenStrem=", "Unknown key 'ListenStrem'"),
    ],
)
def test_verify_reports_a_broken_unit(
    sandbox: Sandbox, name: str, old: str, new: str, problem: str
) -> None:
    link_daemon_into_home(sandbox)
    folder = broken_copy(sandbox, name, old, new)
    done = verify(sandbox, folder / NAMES[0], folder / NAMES[1])
    assert problem in done.stderr, done
    with pytest.raises(AssertionError):
        assert_verified(done)


def test_verify_accepts_a_daemon_path_with_spaces_and_specifiers(sandbox: Sandbox) -> None:
    # A venv under "~/My Tools/100%/$work" must still be written so that systemd runs it.
    odd = sandbox.root / "My Tools" / "100%" / "$work;x"
    odd.mkdir(parents=True)
    (odd / "simpleaided").symlink_to(VENV_DAEMON)
    line = units.exec_start([str(odd / "simpleaided")])
    folder = sandbox.root / "odd-units"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_text(units.render(name, line))
    assert_verified(verify(sandbox, folder / NAMES[0], folder / NAMES[1]))


# -- the templates -------------------------------------------------------------------------


def test_the_templates_carry_the_marker_and_the_settings_asked_for() -> None:
    socket = (TEMPLATES / "simpleaided.socket").read_text()
    service = (TEMPLATES / "simpleaided.service").read_text()
    for text in (socket, service):
        assert text.splitlines()[0] == units.MARKER
    for setting in [
        "ListenStream=%t/simpleaide/daemon.sock",
        "SocketMode=0600",
        "DirectoryMode=0700",
        "FileDescriptorName=rpc",
        "WantedBy=sockets.target",
    ]:
        assert f"\n{setting}\n" in socket, setting
    for setting in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "Restart=on-failure",
        "ExecStart=%h/.local/bin/simpleaided",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=mixed",
        "Requires=simpleaided.socket",
        "After=simpleaided.socket",
        "Also=simpleaided.socket",
        "SyslogIdentifier=simpleaided",
        # A hard limit far above the daemon's connection cap, whatever systemd's version;
        # the daemon raises its own soft limit to it.
        "LimitNOFILE=1024:524288",
    ]:
        assert f"\n{setting}\n" in service, setting


def test_no_setting_turns_on_no_new_privileges() -> None:
    # In a user unit each of these implies NoNewPrivileges=yes (systemd.exec(5)), which every
    # child inherits: sudo in the daemon's terminal sessions would stop working.
    implying = {
        "NoNewPrivileges", "SystemCallFilter", "SystemCallArchitectures", "SystemCallLog",
        "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
        "LockPersonality", "MemoryDenyWriteExecute", "ProtectKernelTunables",
        "ProtectKernelModules", "ProtectKernelLogs", "ProtectClock", "ProtectHostname",
        "PrivateDevices", "DynamicUser", "PrivateUsers",
    }  # fmt: skip
    keys = {
        line.partition("=")[0]
        for line in (TEMPLATES / "simpleaided.service").read_text().splitlines()
        if line and not line.startswith(("#", "["))
    }
    assert keys & implying == set()


def test_the_wheel_carries_the_templates_where_the_client_looks() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    force_include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force_include["systemd"] == "simpleaide/systemd"
    packaged = Path(units.__file__).resolve().parent / "systemd"
    # In this checkout there is no packaged copy, so the repository's folder is used.
    assert not packaged.exists()
    assert Path(units.template_dir()) == TEMPLATES


# -- install-units ---------------------------------------------------------------------------


def test_install_units_writes_both_units(sandbox: Sandbox) -> None:
    result = sandbox.ok("daemon", "install-units")
    folder = unit_dir(sandbox)
    for name in NAMES:
        mode = (folder / name).stat().st_mode
        assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, oct(mode)
    program = exec_start(folder / "simpleaided.service")
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    assert program == str(VENV_DAEMON)  # beside the interpreter, symlinks not resolved
    assert (folder / "simpleaided.socket").read_text() == (TEMPLATES / NAMES[0]).read_text()
    shipped = (TEMPLATES / "simpleaided.service").read_text()
    written = (folder / "simpleaided.service").read_text()
    assert written == shipped.replace("ExecStart=%h/.local/bin/simpleaided", f"ExecStart={program}")
    assert f"wrote {folder / 'simpleaided.socket'}\n" in result.stdout
    assert f"ExecStart={program}\n" in result.stdout
    assert "  systemctl --user daemon-reload\n" in result.stdout
    assert "  systemctl --user enable --now simpleaided.socket\n" in result.stdout
    assert not sandbox.socket.exists()  # it never talked to, or started, a daemon
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_install_units_twice_says_already_installed(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "install-units")
    before = {name: (unit_dir(sandbox) / name).stat().st_mtime_ns for name in NAMES}
    result = sandbox.ok("daemon", "install-units")
    assert result.stdout.startswith(f"already installed in {unit_dir(sandbox)}")
    assert {name: (unit_dir(sandbox) / name).stat().st_mtime_ns for name in NAMES} == before


def test_a_changed_unit_is_replaced_only_with_force(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "install-units")
    service = unit_dir(sandbox) / "simpleaided.service"
    original = service.read_text()
    service.write_text(original.replace("RestartSec=1\n", "RestartSec=5\n"))
    line = refusal(sandbox.run("daemon", "install-units"))
    assert str(service) in line
    assert "'RestartSec=5', not 'RestartSec=1'" in line
    assert line.endswith("use --force to replace it")
    assert "RestartSec=5\n" in service.read_text()
    result = sandbox.ok("daemon", "install-units", "--force")
    assert f"replaced {service}\n" in result.stdout
    assert f"unchanged {unit_dir(sandbox) / 'simpleaided.socket'}\n" in result.stdout
    assert service.read_text() == original
    assert stat.S_IMODE(service.stat().st_mode) == 0o644


def test_install_units_refuses_a_foreign_unit_without_force(sandbox: Sandbox) -> None:
    folder = sandbox.root / "units"
    folder.mkdir()
    (folder / "simpleaided.socket").write_text("[Socket]\nListenStream=/tmp/x.sock\n")
    line = refusal(sandbox.run("daemon", "install-units", "--dir", str(folder)))
    assert "it was not installed by simpleaide" in line
    assert not (folder / "simpleaided.service").exists()  # nothing written when refused


def test_default_unit_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert units.default_unit_dir({"XDG_CONFIG_HOME": "/cfg"}) == "/cfg/systemd/user"
    expected = "/home/someone/.config/systemd/user"
    assert units.default_unit_dir({}) == expected
    assert units.default_unit_dir({"XDG_CONFIG_HOME": "relative/cfg"}) == expected


# -- the daemon's command line ------------------------------------------------------------------


def test_exec_start_quotes_for_systemd() -> None:
    assert units.exec_start(["/opt/sa/bin/simpleaided"]) == "ExecStart=/opt/sa/bin/simpleaided"
    assert units.exec_start(["/a b/100%/$x/simpleaided"]) == (
        'ExecStart="/a b/100%%/$x/simpleaided"'
    )
    assert units.exec_start(["/usr/bin/python3", "-m", "simpleaided"]) == (
        "ExecStart=/usr/bin/python3 -m simpleaided"
    )
    for bad in ['/a"b/simpleaided', "/a\\b/simpleaided", "/a\nb/simpleaided", "/a\udcffb"]:
        with pytest.raises(CliError, match="cannot write"):
            units.exec_start([bad])


def test_the_daemon_beside_the_interpreter_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)  # as in a venv: not to be resolved
    daemon = venv_bin / "simpleaided"
    daemon.write_text("#!/bin/sh\n")
    daemon.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    on_path = elsewhere / "simpleaided"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    assert units.daemon_command() == [str(daemon)]
    daemon.unlink()
    assert units.daemon_command() == [str(on_path)]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert units.daemon_command() == [str(venv_bin / "python"), "-m", "simpleaided"]


# -- uninstall-units -----------------------------------------------------------------------


def test_uninstall_removes_the_units_and_their_enable_links(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "install-units")
    folder = unit_dir(sandbox)
    ours = folder / "sockets.target.wants" / "simpleaided.socket"
    ours.parent.mkdir()
    ours.symlink_to(folder / "simpleaided.socket")
    relative = folder / "default.target.wants" / "simpleaided.service"
    relative.parent.mkdir()
    relative.symlink_to("../simpleaided.service")
    unrelated = folder / "default.target.wants" / "other.service"
    unrelated.symlink_to(folder / "other.service")
    not_ours = folder / "timers.target.wants" / "simpleaided.service"
    not_ours.parent.mkdir()
    not_ours.symlink_to("/usr/lib/systemd/user/simpleaided.service")
    result = sandbox.ok("daemon", "uninstall-units")
    for path in [folder / NAMES[0], folder / NAMES[1], ours, relative]:
        assert not os.path.lexists(path), path
        assert f"removed {path}\n" in result.stdout
    assert unrelated.is_symlink() and not_ours.is_symlink()
    assert not ours.parent.exists()  # emptied, so removed
    assert "  systemctl --user daemon-reload\n" in result.stdout
    assert "  systemctl --user stop simpleaided.socket simpleaided.service\n" in result.stdout
    assert not sandbox.socket.exists()


def test_uninstall_with_nothing_installed_succeeds(sandbox: Sandbox) -> None:
    result = sandbox.ok("daemon", "uninstall-units")
    assert result.stdout == f"no simpleaided units in {unit_dir(sandbox)}\n"
    result = sandbox.ok("daemon", "uninstall-units", "--dir", str(sandbox.root / "nowhere"))
    assert result.stdout == f"no simpleaided units in {sandbox.root / 'nowhere'}\n"


def test_uninstall_leaves_a_foreign_unit_alone(sandbox: Sandbox) -> None:
    sandbox.ok("daemon", "install-units")
    service = unit_dir(sandbox) / "simpleaided.service"
    service.write_text("[Service]\nExecStart=/usr/bin/true\n")
    line = refusal(sandbox.run("daemon", "uninstall-units"))
    assert f"{service} was not installed by simpleaide" in line
    assert service.exists() and (unit_dir(sandbox) / "simpleaided.socket").exists()


def test_the_help_says_what_to_run(sandbox: Sandbox) -> None:
    install = sandbox.ok("daemon", "install-units", "--help").stdout
    assert "systemctl --user enable --now simpleaided.socket" in install
    assert "--force" in install and "--dir DIR" in install
    uninstall = sandbox.ok("daemon", "uninstall-units", "--help").stdout
    assert "systemctl --user disable --now simpleaided.socket simpleaided.service" in uninstall


def test_the_stop_timeout_leaves_room_for_the_drain_and_the_terminals_hang_up() -> None:
    """systemd's SIGKILL must not come before the daemon has drained its requests and hung
    up its terminals (HUP, then TERM and KILL a grace apart) with their defaults."""
    from simpleaided.app.config import Config

    service = (TEMPLATES / "simpleaided.service").read_text()
    timeout = int(service.split("\nTimeoutStopSec=", 1)[1].split("\n", 1)[0])
    defaults = Config()
    needed = defaults.daemon.shutdown_grace_seconds + 2 * defaults.terminals.stop_grace_seconds
    assert timeout >= needed + 2
    assert "\nKillMode=mixed\n" in service  # SIGTERM to the daemon alone: it hangs them up
