"""Drives `esplink board run` as a subprocess and watches its event lines."""
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def esplink(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "esplink.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


class Board:
    def __init__(self, flash: Path, wifi=None, chip="esp8266", heap="38k"):
        self.flash = Path(flash)
        self.wifi = wifi or {}
        self.chip = chip
        self.heap = heap
        self.http_port = free_tcp_port()
        self.lines = []
        self.cursor = 0
        self.cond = threading.Condition()
        self.proc = None

    def start(self):
        argv = [sys.executable, "-m", "esplink.cli", "board", "run", "--flash", str(self.flash),
                "--http-port", str(self.http_port), "--chip", self.chip, "--heap", self.heap]
        for ssid, password in self.wifi.items():
            argv += ["--wifi", f"{ssid}={password}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
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
                if left <= 0 or (self.proc.poll() is not None and not self.cond.wait(0.2)):
                    raise AssertionError(f"no line matching {pattern!r}; board printed:\n" + self.log())
                self.cond.wait(left)

    def log(self):
        return "\n".join(self.lines)

    def press(self, hold=0.2):
        done = esplink("board", "press", "--flash", str(self.flash), "--hold", str(hold), timeout=hold + 10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def control(self, command):
        # the raw control socket: returns the LED state the board reports
        port = int((self.flash / ".vboard" / "control").read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(command.encode(), ("127.0.0.1", port))
            return json.loads(s.recv(256))

    def led_becomes(self, lit, timeout=2.0):
        """The LED pin follows a pattern change at the pattern's next step: poll for it."""
        deadline = time.monotonic() + timeout
        while self.control("state")["led"] != lit:
            assert time.monotonic() < deadline, f"LED never became {lit}:\n" + self.log()
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
                self.proc.kill()
                self.proc.wait()


def http_exchange(port, raw_requests, timeout=5.0):
    """Send raw request bytes on one connection; return everything the device sent
    until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for raw in raw_requests:
            s.sendall(raw)
        return read_until_quiet(s)


def read_until_quiet(s, quiet=0.5):
    s.settimeout(quiet)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def split_responses(data):
    """Parse concatenated HTTP responses into [(status, headers, body)]."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        n = int(headers["Content-Length"])
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out
