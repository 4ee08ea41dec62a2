"""esplink.vm: finding the Debian mirror, the cache and launcher, and the real VM."""
import argparse
import subprocess

import pytest

from esplink import CommandError, vm

MIRROR = "http://mirror.example/debian"


def write_apt(tmp_path, sources_list="", **parts):
    """An /etc/apt lookalike: sources.list plus sources.list.d/<name> files."""
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (etc / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return etc


# --- sources parsing ------------------------------------------------------------

DEB822 = f"""\
Types: deb
# a comment inside the paragraph
URIs: {MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_format(tmp_path):
    etc = write_apt(tmp_path, debian_sources=DEB822)
    entries = vm.parse_sources(etc / "sources.list.d/debian.sources")
    assert entries[0] == {"uri": MIRROR, "suites": ["bookworm", "bookworm-updates"],
                          "components": ["main"]}
    assert vm.find_mirror(etc) == MIRROR


def test_deb822_inline_key_multiple_uris_and_disabled(tmp_path):
    text = """\
Types: deb
URIs: http://off.example/debian
Suites: trixie
Components: main
Enabled: no

Types: deb-src deb
URIs: http://one.example/debian/ http://two.example/debian
Suites: trixie
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFxyz
 -----END PGP PUBLIC KEY BLOCK-----
"""
    etc = write_apt(tmp_path, x_sources=text)
    uris = [e["uri"] for e in vm.parse_sources(etc / "sources.list.d/x.sources")]
    assert uris == ["http://one.example/debian/", "http://two.example/debian"]
    assert vm.find_mirror(etc) == "http://one.example/debian"


def test_one_line_format_with_options_and_comments(tmp_path):
    text = f"""\
# deb http://commented.example/debian bookworm main
deb-src {MIRROR} bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} bookworm main contrib  # trailing
deb http://mirror.example/debian-security bookworm-security main
"""
    etc = write_apt(tmp_path, text)
    entries = vm.parse_sources(etc / "sources.list")
    assert [e["uri"] for e in entries] == [MIRROR, "http://mirror.example/debian-security"]
    assert entries[0]["components"] == ["main", "contrib"]
    assert vm.find_mirror(etc) == MIRROR


def test_security_only_is_no_mirror(tmp_path):
    etc = write_apt(tmp_path, "deb http://mirror.example/debian-security bookworm-security main\n")
    with pytest.raises(CommandError):
        vm.find_mirror(etc)


def test_third_party_repositories_are_skipped(tmp_path):
    etc = write_apt(
        tmp_path,
        "deb https://vendor.example/apt cloud-sdk-bookworm main\n"
        "deb https://other.example/linux/debian bookworm stable\n",
        node_sources="Types: deb\nURIs: https://node.example/node_20.x\n"
                     "Suites: nodistro\nComponents: main\n",
        # only *.list and *.sources count
        extra_list_disabled=f"deb {MIRROR} bookworm main\n",
    )
    with pytest.raises(CommandError, match="no Debian archive"):
        vm.find_mirror(etc)


def test_prefers_uri_ending_in_debian(tmp_path):
    etc = write_apt(
        tmp_path,
        "deb http://snap.example/archive/debian/20250520T000000Z bookworm main\n",
        z_list=f"deb {MIRROR}/ trixie main\n",
    )
    assert vm.find_mirror(etc) == MIRROR


def test_codename_suite_without_debian_path(tmp_path):
    uri = "http://snap.example/archive/debian/20250520T000000Z"
    etc = write_apt(tmp_path, f"deb {uri} bookworm main\n")
    assert vm.find_mirror(etc) == uri


def test_no_sources_at_all(tmp_path):
    with pytest.raises(CommandError):
        vm.find_mirror(tmp_path / "nowhere")


# --- cache, launcher, atomic install ----------------------------------------------

def fake_fetch(mirror, stage, root):
    """Lays out a tree like the real packages, with a loader that echoes its argv."""
    lib = root / vm.LIBDIR
    lib.mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/micropython").write_text("")
    loader = lib / "ld-linux.so.2"
    loader.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    loader.chmod(0o755)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """install() with a fake download and a made-up mirror."""
    monkeypatch.setattr(vm, "fetch", fake_fetch)
    monkeypatch.setattr(vm, "find_mirror", lambda: MIRROR)
    monkeypatch.setattr(vm, "KEYRING", __file__)
    monkeypatch.setattr(vm.shutil, "which", lambda name: "/usr/bin/" + name)
    return tmp_path / "cache" / "mp"


def test_install_and_launcher(offline):
    launcher = vm.install(offline, quiet=True)
    assert launcher == offline / "micropython"
    assert vm.is_installed(offline)
    # only the target is left beside it: the staging dir is gone
    assert [p.name for p in offline.parent.iterdir()] == ["mp"]
    # the launcher finds its directory even after the cache is moved
    moved = offline.parent / "moved dir"
    offline.rename(moved)
    out = subprocess.run([moved / "micropython", "-c", "a b"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    lib = str(moved.resolve() / vm.LIBDIR)
    assert out == ["--library-path", lib, str(moved.resolve() / "usr/bin/micropython"),
                   "-c", "a b"]


def test_cache_is_reused(offline, monkeypatch):
    vm.install(offline, quiet=True)

    def boom(*a):
        raise AssertionError("fetched again")

    monkeypatch.setattr(vm, "fetch", boom)
    monkeypatch.setattr(vm, "find_mirror", boom)
    assert vm.install(offline, quiet=True) == offline / "micropython"


def test_broken_cache_is_replaced(offline):
    offline.mkdir(parents=True)
    (offline / "leftover").write_text("")
    (offline / vm.MARKER).write_text("micropython 0.0 i386\n")  # another version
    vm.install(offline, quiet=True)
    assert vm.is_installed(offline)
    assert not (offline / "leftover").exists()


def test_interrupted_install_leaves_nothing(offline, monkeypatch):
    def half(mirror, stage, root):
        fake_fetch(mirror, stage, root)
        raise CommandError("apt-get download failed")

    monkeypatch.setattr(vm, "fetch", half)
    with pytest.raises(CommandError):
        vm.install(offline, quiet=True)
    assert list(offline.parent.iterdir()) == []


def test_missing_tools(monkeypatch, tmp_path):
    monkeypatch.setattr(vm.shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match="apt-get"):
        vm.install(tmp_path / "mp", quiet=True)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.delenv("ESPLINK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert vm.default_cache_dir() == tmp_path / "esplink" / "micropython-1.25.0-i386"
    monkeypatch.setenv("ESPLINK_CACHE", str(tmp_path / "c"))
    assert vm.default_cache_dir() == tmp_path / "c"


def test_micropython_env_override(monkeypatch, tmp_path):
    exe = tmp_path / "mp"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("MICROPYTHON", str(exe))
    assert vm.micropython() == [str(exe)]
    monkeypatch.setenv("MICROPYTHON", str(tmp_path / "missing"))
    with pytest.raises(CommandError):
        vm.micropython()


def test_cli_registers(offline, monkeypatch, capsys):
    monkeypatch.setenv("ESPLINK_CACHE", str(offline))
    monkeypatch.delenv("MICROPYTHON", raising=False)
    parser = argparse.ArgumentParser()
    vm.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["vm", "install", "-q"])
    assert args.func(args) == 0
    args = parser.parse_args(["vm", "path"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(offline / "micropython")] * 2


# --- the real thing -----------------------------------------------------------------

def test_real_micropython(monkeypatch):
    monkeypatch.delenv("MICROPYTHON", raising=False)
    argv = vm.micropython()
    code = "import sys; print(sys.maxsize, sys.implementation.version)"
    out = subprocess.run(argv + ["-X", f"heapsize={vm.HEAP_DEFAULT}", "-c", code],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split(None, 1)[0] == "2147483647"  # 32-bit, like the chips
    assert out.split(None, 1)[1].startswith("(1, 25, 0")
