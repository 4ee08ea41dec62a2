"""The MicroPython VM: Debian's 32-bit (i386) unix port, a host stand-in for the chip.

The i386 build has the ESP chips' object sizes, and `-X heapsize=38k` gives it
the ESP8266's heap. It is fetched with apt-get from the Debian mirror the
machine already uses, into a private apt state, so no root and no changes to
the host's packages are needed.
"""
from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from esplink import CommandError

VERSION = "1.25.0+ds-1"
SUITE = "trixie"
ARCH = "i386"
# The unix port's runtime dependencies, from the same suite: the host's own
# libraries may be older (bookworm's glibc is 2.36) or absent for i386. libgcc_s:
# glibc loads it to cancel a thread at exit (the virtual board's timers are threads).
PACKAGES = [f"micropython={VERSION}", "libc6", "libffi8", "libgcc-s1",
            "libmbedcrypto16", "libmbedtls21", "libmbedx509-7"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
HEAP_DEFAULT = "38k"  # the ESP8266's free heap

MARKER = ".installed"
MARKER_TEXT = f"micropython {VERSION} {ARCH}: {' '.join(PACKAGES)}\n"
LIBDIR = "usr/lib/i386-linux-gnu"

# ld.so and libc.so must come from the same glibc build, so the bundled loader
# is always used: the host's i386 loader (if any) may not match trixie's libc.
# The directory is found from $0 so the cache can be moved.
LAUNCHER = f"""#!/bin/sh
# MicroPython {VERSION} ({ARCH}), run through its own trixie loader and libraries.
dir=$(cd -- "$(dirname -- "$0")" && pwd -P)
lib="$dir/{LIBDIR}"
exec "$lib/ld-linux.so.2" --library-path "$lib" "$dir/usr/bin/micropython" "$@"
"""

# Suites of the main Debian archive (a mirror of any of them also carries trixie).
DEBIAN_SUITES = {
    "jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky",
    "duke", "sid", "oldoldstable", "oldstable", "stable", "testing", "unstable",
}


def default_cache_dir() -> Path:
    if os.environ.get("ESPLINK_CACHE"):
        return Path(os.environ["ESPLINK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esplink" / f"micropython-{VERSION.split('+')[0]}-{ARCH}"


# --- finding the machine's Debian mirror -----------------------------------

def parse_sources(path: Path) -> list[dict]:
    """`deb` entries of one apt sources file, as {uri, suites, components}."""
    text = Path(path).read_text(errors="replace")
    if str(path).endswith(".sources"):
        return _parse_deb822(text)
    return _parse_one_line(text)


_ONE_LINE = re.compile(r"^(\S+)\s+(?:\[[^\]]*\]\s*)?(\S+)\s+(\S+)\s*(.*)$")


def _parse_one_line(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        m = _ONE_LINE.match(line.split("#", 1)[0].strip())
        if m and m.group(1) == "deb":
            entries.append({"uri": m.group(2), "suites": [m.group(3)],
                            "components": m.group(4).split()})
    return entries


def _parse_deb822(text: str) -> list[dict]:
    entries, fields, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                entries.extend(_deb822_entries(fields))
            fields, key = {}, None
        elif line[0] in " \t":
            if key:  # continuation, e.g. an inline Signed-By key
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    return entries


def _deb822_entries(fields: dict) -> list[dict]:
    if "deb" not in fields.get("types", "").split():
        return []
    if fields.get("enabled", "yes").lower() == "no":
        return []
    suites = fields.get("suites", "").split()
    components = fields.get("components", "").split()
    return [{"uri": uri, "suites": suites, "components": components}
            for uri in fields.get("uris", "").split()]


def _source_files(etc: Path) -> list[Path]:
    files = [etc / "sources.list"]
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir()
                        if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def _is_debian_archive(entry: dict) -> bool:
    # Third-party repositories often reuse a codename as suite ("bookworm")
    # or live under .../debian, but rarely both with a "main" component.
    if "main" not in entry["components"] or entry["uri"].startswith("cdrom:"):
        return False
    suites = [s for s in entry["suites"] if not s.endswith("-security")]
    named = any(s.split("-")[0] in DEBIAN_SUITES for s in suites)
    return bool(suites) and (named or _path_is_debian(entry["uri"]))


def _path_is_debian(uri: str) -> bool:
    return urlparse(uri).path.rstrip("/").endswith("/debian")


def find_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian archive URI from the machine's apt configuration."""
    candidates = []
    for f in _source_files(Path(etc)):
        try:
            candidates += [e for e in parse_sources(f) if _is_debian_archive(e)]
        except OSError:
            continue
    if not candidates:
        raise CommandError(
            f"no Debian archive found in {etc}/sources.list(.d); "
            "set MICROPYTHON=/path/to/micropython to use your own build")
    # sorted() is stable: the first entry wins among equally good ones
    best = sorted(candidates, key=lambda e: not _path_is_debian(e["uri"]))[0]
    return best["uri"].rstrip("/")


# --- installing ---------------------------------------------------------------

def is_installed(cache_dir: Path) -> bool:
    marker = Path(cache_dir) / MARKER
    try:
        return (marker.read_text() == MARKER_TEXT
                and os.access(Path(cache_dir) / "micropython", os.X_OK))
    except OSError:
        return False


def write_launcher(root: Path) -> Path:
    launcher = Path(root) / "micropython"
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    return launcher


def install(cache_dir=None, quiet: bool = False) -> Path:
    """Install MicroPython into cache_dir (once) and return the launcher path."""
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    if is_installed(target):
        return target / "micropython"
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise CommandError(f"{tool} not found: installing MicroPython needs "
                               "a Debian-based host (or set MICROPYTHON=...)")
    if not Path(KEYRING).is_file():
        raise CommandError(f"{KEYRING} missing: install debian-archive-keyring")
    mirror = find_mirror()
    if not quiet:
        print(f"esplink: installing MicroPython {VERSION} ({ARCH}) from "
              f"{mirror} into {target}", file=sys.stderr)

    # Everything is built beside the target and renamed into place last, so an
    # interrupted install never leaves a half-filled cache that looks complete.
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        root = stage / "root"
        root.mkdir()
        fetch(mirror, stage, root)
        write_launcher(root)
        (root / MARKER).write_text(MARKER_TEXT)
        if target.exists():  # a broken or outdated install
            shutil.rmtree(target)
        try:
            root.rename(target)
        except OSError:
            if not is_installed(target):  # else a concurrent install won
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target / "micropython"


def fetch(mirror: str, stage: Path, root: Path) -> None:
    """Download the packages with a private apt state and unpack them into root."""
    state, debs = stage / "apt", stage / "debs"
    for d in (state / "lists/partial", state / "cache/archives/partial", debs):
        d.mkdir(parents=True)
    sources = state / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {mirror} {SUITE} main\n")
    opts = {
        "Dir::State": state,
        "Dir::State::Lists": state / "lists",
        "Dir::State::status": "/dev/null",  # the host's installed set is irrelevant
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::Cache": state / "cache",
        "APT::Architecture": ARCH,
        "APT::Architectures": ARCH,
        "Debug::NoLocking": "1",  # the lock files are root-only and not ours
        "Acquire::Languages": "none",
        "APT::Update::Error-Mode": "any",  # an unreachable mirror is an error
        # as root, apt would otherwise drop to _apt, which cannot write here
        "APT::Sandbox::User": _user_name(),
    }
    apt = ["apt-get", "-q"] + [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]
    _run("apt-get update", apt + ["update"])
    _run("apt-get download", apt + ["download"] + PACKAGES, cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(f"unpacking {deb.name}", ["dpkg-deb", "-x", deb, root])
    if not (root / LIBDIR / "ld-linux.so.2").exists():
        raise CommandError("the downloaded packages lack the i386 loader")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry, as in some containers
        return "root" if os.getuid() == 0 else str(os.getuid())


def _run(what: str, cmd: list, cwd=None) -> None:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-5:])
        raise CommandError(f"{what} failed:\n{tail}")


def micropython() -> list[str]:
    """The argv prefix that runs MicroPython; env MICROPYTHON overrides it."""
    override = os.environ.get("MICROPYTHON")
    if override:
        if not shutil.which(override):
            raise CommandError(f"MICROPYTHON={override} is not an executable")
        return [override]
    return [str(install())]


# --- command line -------------------------------------------------------------

def cmd_install(args) -> int:
    print(install(args.cache, quiet=args.quiet))
    return 0


def cmd_path(args) -> int:
    print(shlex.join(micropython()))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("vm", help="the MicroPython unix port (i386) as a chip stand-in")
    sub = p.add_subparsers(dest="vm_command", required=True)
    inst = sub.add_parser("install", help="install it (once) and print the launcher path")
    inst.add_argument("--cache", type=Path, help="install directory (default: env "
                      "ESPLINK_CACHE, else ~/.cache/esplink/...)")
    inst.add_argument("-q", "--quiet", action="store_true")
    inst.set_defaults(func=cmd_install)
    sub.add_parser("path", help="print the command that runs it (installing if needed)"
                   ).set_defaults(func=cmd_path)
