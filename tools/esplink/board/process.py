"""The virtual board as a running thing: its boot loop (a reset, a watchdog bite or a
crash boots it again with its flash intact), the chip's watchdogs kept from the host,
its event lines, and the control client that presses its button.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from esplink import CommandError, vm
from esplink.board import deploy

RESET_EXIT = 3  # vmachine.reset(): boot again, flash intact
CRASH_EXIT = 4  # a stand-in found what crashes the chip (axTLS out of heap): boot again
SOFT_WDT_TICK_S = 1.6  # the ESP8266 SDK's software watchdog timer (ets_alt_task.c:141-170)


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((deploy.LOOPBACK, 0))
        return s.getsockname()[1]


def free_tcp_port():
    return free_port(socket.SOCK_STREAM)


class Watchdogs:
    """The chip's watchdogs, kept by the host because the VM has no timer interrupt.

    The VM tells them (UDP datagrams from vmachine.py / vtls.py):
    - b"wdt soft": a machine.WDT exists on the ESP8266. From now on only feed() feeds
      the SDK's software watchdog, whose 1.6 s timer resets the chip at its second
      tick after the last feed: 1.6-3.2 s (machine_wdt.c:39-57, ets_alt_task.c:141-170).
    - b"wdt task MS": the ESP32's task watchdog with that timeout.
    - b"f": feed.
    - b"hang WHY": the chip is stuck in C and feeds nothing; the software watchdog,
      which the SDK keeps even without a machine.WDT, resets it.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((deploy.LOOPBACK, 0))
        self.sock.settimeout(0.02)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.proc = None
        self.bite = None  # why the last boot was reset, once it was

    def boot(self, proc):
        with self.lock:
            self.proc, self.bite = proc, None
            self.rule, self.timeout, self.hung = None, None, None
            self.last_feed = time.monotonic()
            self.phase = self.last_feed + random.uniform(0, SOFT_WDT_TICK_S)  # a tick of the SDK timer

    def run(self):
        while True:
            try:
                msg = self.sock.recv(512).decode(errors="replace").split(None, 1)
            except socket.timeout:
                msg = None
            except OSError:
                return  # closed
            with self.lock:
                if msg:
                    self._hear(msg)
                self._check(time.monotonic())

    def _hear(self, msg):
        now = time.monotonic()
        if msg[0] == "f" and not self.hung:
            self.last_feed = now
        elif msg[0] == "wdt":
            words = msg[1].split()
            self.rule = words[0]
            self.timeout = int(words[1]) / 1000 if self.rule == "task" else None
            self.last_feed = now
        elif msg[0] == "hang":
            self.hung = msg[1] if len(msg) > 1 else "?"
            if not self.rule:  # the SDK's own watchdog, fed until this moment
                self.rule = "soft"
                self.last_feed = now

    def _check(self, now):
        if not self.proc or self.bite or self.proc.poll() is not None or not self.rule:
            return
        since = now - self.last_feed
        if self.rule == "soft":
            # ticks at phase + k * 1.6 s; the counter a feed cleared reaches 2 at the
            # second tick after it
            k = (self.last_feed - self.phase) // SOFT_WDT_TICK_S + 2
            bites = now >= self.phase + k * SOFT_WDT_TICK_S
            rule = "software watchdog"
        else:
            bites = since >= self.timeout
            rule = "task watchdog"
        if bites:
            why = f"hung: {self.hung}" if self.hung else "not fed"
            self.bite = f"{rule} reset ({why}; {since * 1000:.0f} ms since the last feed)"
            self.proc.kill()

    def close(self):
        self.sock.close()


def boot_loop(flash_dir, options, out=sys.stdout):
    """Boot the board and print its events until it stops; a reset, a watchdog bite
    or a crash boots it again with its flash intact, as on a chip. Returns the exit
    status of the boot that did not come back."""
    flash_dir = Path(flash_dir)
    standins = deploy.state_dir(flash_dir)
    (standins / "rtc").unlink(missing_ok=True)  # power on: RTC memory is gone
    dogs = Watchdogs()
    threading.Thread(target=dogs.run, daemon=True).start()
    control_port = free_port()
    (standins / "control").write_text(str(control_port))
    sink = _sink()
    # raw UTF-8: the VM's json reads an escaped surrogate pair as CESU-8, and a network
    # named outside the BMP would then never match what the firmware joins
    env = dict(os.environ, ESPLINK_VBOARD=json.dumps(
        deploy.config(flash_dir, options, control_port, dogs.port, sink[0].getsockname()[1]), ensure_ascii=False))
    argv = vm.micropython() + ["-X", f"heapsize={deploy.vm_heap(options)}", str(standins / "runner.py"),
                               str(standins)] + ([str(Path(options.prelude).resolve())] if options.prelude else [])
    try:
        while True:
            proc = subprocess.Popen(argv, cwd=flash_dir, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
            dogs.boot(proc)
            try:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
            if dogs.bite:
                print(f"board: {dogs.bite}", file=out, flush=True)
            elif code < 0 and code != -signal.SIGTERM:
                print(f"board: crash (the VM died of signal {-code}); booting again", file=out, flush=True)
            elif code not in (RESET_EXIT, CRASH_EXIT):
                print(f"board: stopped (exit {code})", file=out, flush=True)
                return code
    finally:
        dogs.close()
        for s in sink:
            s.close()


def _sink():
    """A loopback port that answers nothing: a TCP socket bound but not listening
    (a connect is refused) and a UDP socket on the same port never read, held so no
    one else takes it. The board's refused destinations go there."""
    for _ in range(20):
        tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp.bind((deploy.LOOPBACK, 0))
        try:
            udp.bind(tcp.getsockname())
            return tcp, udp
        except OSError:  # that UDP port is taken: another
            tcp.close()
            udp.close()
    raise CommandError("no free loopback port for the board's sink")


def control(flash_dir, command, timeout=2.0):
    """Send a command to the running board's control socket; returns its state
    (LED lit, LED changes, heap figures)."""
    try:
        port = int((deploy.state_dir(flash_dir) / "control").read_text())
    except (OSError, ValueError):
        raise CommandError(f"no virtual board has run in {flash_dir}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(command.encode(), (deploy.LOOPBACK, port))
            return json.loads(s.recv(512))
        except OSError:
            raise CommandError(f"the virtual board in {flash_dir} does not answer (is it running?)")


def press(flash_dir, hold=0.2):
    """Hold the button for `hold` seconds; returns the board's state."""
    state = control(flash_dir, f"press {int(hold * 1000)}")
    time.sleep(hold)  # like a finger: the command ends when the button is released
    return state


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
                    raise CommandError(f"no line matching {pattern!r}; the process printed:\n" + self.log())
                self.cond.wait(left)

    def log(self):
        with self.cond:
            return "\n".join(self.lines)


class Process:
    """A child process (a VM script, `esplink board run`) whose output lines are
    collected to wait on."""

    def __init__(self, argv, **popen):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", start_new_session=True, **popen)
        self.events = EventLines()
        threading.Thread(target=self.events.read, args=(self.proc.stdout,), daemon=True).start()

    @property
    def lines(self):
        return self.events.lines

    def expect(self, pattern, timeout=15.0):
        return self.events.expect(pattern, timeout)

    def log(self):
        return self.events.log()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the VM child too
                self.proc.wait()


class BoardProcess:
    """`esplink board run` as a subprocess, with its event lines to wait on. Keyword
    arguments are deploy.Options' fields, plus what flashing writes (device_key,
    ca, plain); ports left out are picked free."""

    def __init__(self, flash, wifi=None, device_key=None, ca=None, plain=False, **options):
        self.flash = Path(flash)
        self.device_key, self.ca, self.plain = device_key, ca, plain
        options.setdefault("http_port", free_tcp_port())
        options.setdefault("touch_port", free_port())
        options.setdefault("ack_port", free_port())
        options.setdefault("ntp_port", free_port())
        options.setdefault("dns_port", free_port())
        self.options = deploy.Options(wifi=wifi or {}, **options)
        self.process = None

    def __getattr__(self, name):  # http_port, touch_port, chip, ...
        if name != "options" and hasattr(self.options, name):
            return getattr(self.options, name)
        raise AttributeError(name)

    def argv(self):
        o = self.options
        argv = [sys.executable, "-m", "esplink.cli", "board", "run", "--flash", str(self.flash),
                "--chip", o.chip, "--heap", o.heap, "--http-port", str(o.http_port),
                "--touch-port", str(o.touch_port), "--ack-port", str(o.ack_port), "--ntp-port", str(o.ntp_port),
                "--dns-port", str(o.dns_port), "--dns-delay", str(o.dns_delay_ms)]
        for ssid, rssi in o.scan:
            argv += ["--scan", f"{ssid}:{rssi}"]
        for name, addr in o.hosts.items():
            argv += ["--host", f"{name}={addr}"]
        if o.heap_probe:
            argv.append("--heap-probe")
        if o.prelude:
            argv += ["--prelude", str(o.prelude)]
        if self.ca:
            argv += ["--ca", str(self.ca)]
        if self.plain:
            argv.append("--plain")
        return argv

    def start(self):
        # secrets by environment, not argv: ps shows a process's arguments to every user
        env = dict(os.environ, ESPLINK_BOARD_WIFI="\n".join(f"{k}={v}" for k, v in self.options.wifi.items()))
        env.pop("ESPLINK_DEVICE_KEY", None)
        if self.device_key:
            env["ESPLINK_DEVICE_KEY"] = self.device_key
        self.process = Process(self.argv(), env=env)
        return self

    @property
    def lines(self):
        return self.process.lines

    def expect(self, pattern, timeout=15.0):
        return self.process.expect(pattern, timeout)

    def log(self):
        return self.process.log()

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
        if self.process:
            self.process.stop()
