"""Power cuts on the virtual board: kill -9 at random points while it pairs, saves its
settings, boots, and rewrites a damaged identity copy, then boot again on the same
flash. After every cut the identity (deviceid, apikey, chipid) and the device key must
be what they were, and the settings the old or the new ones.

    .venv/bin/python tests/soak/power_cuts.py [--cuts 200] [--seed N] [--chip esp8266|esp32] [--dir DIR]

Prints a line per cut and ends with `soak: N cuts, M failures (...)`; exit status 1
when any cut failed. tests/e2e/test_board_robustness_e2e.py runs a 20-cut sample.

A cut kills the VM with SIGKILL (what it wrote is on the disk, a write cut short is
short) and clears the board's RTC memory, as a power cut does; `esplink board run`
then boots it again with its flash intact. The board runs with a slow flash (the
prelude below: every file the firmware writes goes out a byte at a time, with a line
saying so), so cuts land in the middle of writes.
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from esplink import CommandError
from esplink.board.deploy import IDENTITY_COPIES, identity_copies, state_dir
from esplink.board.process import BoardProcess
from esplink.phone import pair_ap

WIFI = {"home": "secret-home-pw", "office": "office-pw-123"}
TOKENS = {"": "", "home": "h0me" * 10, "office": "0ff1ce" * 6 + "0ff1"}
KEY = "5eed0fcafe" * 4  # the device key flashing writes
KINDS = ("pairing", "save", "boot", "repair")
SLOW_FLASH = '''\
# tests/soak/power_cuts.py: a slow flash, so that a kill -9 lands mid-write
import builtins
import io
import time

_open = open


class _Slow(io.IOBase):
    def __init__(self, f, path):
        self.f, self.path = f, path

    def write(self, data):
        for i in range(len(data)):
            self.f.write(data[i:i + 1])
            time.sleep_us(%d)
        return len(data)

    def close(self):
        self.f.close()
        print("flash: wrote", self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _slow_open(path, mode="r", *args):
    f = _open(path, mode, *args)
    if "w" not in mode or path.startswith(".vboard"):
        return f
    print("flash: writing", path)
    return _Slow(f, path)


builtins.open = _slow_open
'''


class Failed(Exception):
    pass


def _state(proc_dir):
    # (state letter, parent pid) of a process, None once it is gone
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def read_copies(flash):
    """Both identity copies, [deviceid, apikey, chipid, device_key] each; Failed if one
    does not verify."""
    copies = identity_copies(flash)
    for name, copy in zip(IDENTITY_COPIES, copies):
        if copy is None:
            raise Failed(f"{name} does not verify")
    return copies


class Soak:
    """A board with a slow flash and its identity, cut again and again."""

    def __init__(self, workdir, chip="esp8266", rng=None, out=print, byte_us=300):
        self.rng = rng or random.Random()
        self.out = out
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        prelude = workdir / "slow_flash.py"
        prelude.write_text(SLOW_FLASH % byte_us)
        self.flash = workdir / "flash"
        self.board = BoardProcess(self.flash, WIFI, device_key=KEY, prelude=prelude, chip=chip).start()
        self.mode = self.board.expect(r"^led: (pairing)", 30)[1]
        self.identity = read_copies(self.flash)[0]
        if self.identity[3] != KEY:
            raise Failed("the first boot did not take the flashed device key")
        self.settings = ("", "")  # (ssid, token) on flash
        self.counts = dict.fromkeys(KINDS, 0)
        self.mid_write = 0
        self.failures = []

    def stop(self):
        self.board.stop()

    def vm_pid(self, host):
        # the VM is `esplink board run`'s one child; between two boots there is none
        for entry in Path("/proc").iterdir():
            state = _state(entry) if entry.name.isdigit() else None
            if state and state[1] == host and state[0] != "Z":
                return int(entry.name)
        return None

    def cut(self, since):
        """Power off: the VM dies where it is and RTC memory is gone. Returns whether a
        file was being written (by the board's lines from `since` on)."""
        host = self.board.process.proc.pid
        deadline = time.monotonic() + 5
        while True:
            os.kill(host, signal.SIGSTOP)  # no next boot before RTC memory is gone
            vm = self.vm_pid(host)
            if vm or time.monotonic() > deadline:
                break
            os.kill(host, signal.SIGCONT)  # between two boots: let the next one start
            time.sleep(0.005)
        try:
            if not vm:
                raise Failed("no VM process under the board")
            os.kill(vm, signal.SIGKILL)
            while (_state(Path(f"/proc/{vm}")) or ("Z",))[0] != "Z":  # dead: it writes nothing more
                time.sleep(0.001)
            (state_dir(self.flash) / "rtc").unlink(missing_ok=True)
        finally:
            os.kill(host, signal.SIGCONT)
        self.board.expect(r"^board: crash \(the VM died of signal 9\)", 10)
        end = self.board.process.events.cursor - 1  # the line just matched
        flash_lines = [ln for ln in self.board.lines[since:end] if ln.startswith("flash: ")]
        return bool(flash_lines) and flash_lines[-1].startswith("flash: writing")

    def settle(self):
        """The next boot, up to a steady state: pairing, or online (no cloud)."""
        self.mode = self.board.expect(r"^led: (pairing|offline)", 30)[1]

    def to_pairing(self):
        if self.mode != "pairing":
            self.board.press()
            self.settle()
            if self.mode != "pairing":
                raise Failed("a press did not start pairing")

    def one(self, i, kind):
        since = len(self.board.lines)
        before = self.settings
        allowed = {before}
        if kind in ("pairing", "save"):
            self.to_pairing()
            new = "office" if before[0] == "home" else "home"
            pair_ap(f"127.0.0.1:{self.board.http_port}", new, WIFI[new], token=TOKENS[new])
            allowed.add((new, TOKENS[new]))
            if kind == "save":
                self.board.expect(r"^flash: writing settings\.json\.tmp", 10)
                delay = self.rng.uniform(0, 0.2)
            else:
                delay = self.rng.uniform(0, 1.5)
        elif kind == "repair":
            name = self.rng.choice(IDENTITY_COPIES)
            data = (self.flash / name).read_bytes()
            cut = self.rng.randrange(len(data))
            (self.flash / name).write_bytes(data[:cut] + bytes([data[cut] ^ 0x20]) + data[cut + 1:])
            self.board.control("reset")
            self.board.expect(rf"^flash: writing {re.escape(name)}$", 10)
            delay = self.rng.uniform(0, 0.05)
        else:
            self.board.control("reset")
            delay = self.rng.uniform(0, 0.6)
        time.sleep(delay)
        mid = self.cut(since)
        self.settle()
        self.check(allowed)
        self.counts[kind] += 1
        self.mid_write += mid
        return f"cut {i}: {kind}, +{delay * 1000:.0f} ms{' (mid-write)' if mid else ''}: " \
               f"{self.settings[0] or 'unpaired'}, {self.mode}"

    def check(self, allowed):
        copies = read_copies(self.flash)
        if copies != [self.identity] * 2:
            raise Failed(f"identity or device key changed: {[c == self.identity for c in copies]}")
        if (self.flash / "settings.json.tmp").exists():
            raise Failed("a temp file outlived the boot")
        saved = json.loads((self.flash / "settings.json").read_text())
        if "device_key" in saved or [saved[k] for k in ("deviceid", "apikey", "chipid")] != self.identity[:3]:
            raise Failed("settings.json's identity changed, or it holds the device key")
        now = (saved["ssid"], saved["token"])
        if now not in allowed:
            raise Failed(f"settings neither old nor new: ssid {now[0]!r}")
        self.settings = now
        if self.mode == "pairing":
            conn = http.client.HTTPConnection("127.0.0.1", self.board.http_port, timeout=5)
            conn.request("GET", "/device")
            device = json.loads(conn.getresponse().read())
            conn.close()
            if [device[k] for k in ("deviceid", "apikey", "chipid")] != self.identity[:3]:
                raise Failed("GET /device answers another identity")

    def run(self, cuts):
        for i in range(1, cuts + 1):
            kind = self.rng.choice(KINDS)
            try:
                self.out(self.one(i, kind))
            except (Failed, CommandError, OSError, ValueError, KeyError) as e:
                self.failures.append(f"cut {i} ({kind}): {e}")
                self.out(f"cut {i}: {kind}: FAILED: {e}")
                try:
                    self.settle_after_failure()
                except (Failed, CommandError, OSError, ValueError, KeyError) as e2:
                    self.failures.append(f"the board did not come back: {e2}")
                    break
        self.check_log()
        return self.failures

    def settle_after_failure(self):
        self.board.control("reset")
        self.settle()
        saved = json.loads((self.flash / "settings.json").read_text())
        self.settings = (saved["ssid"], saved["token"])

    def check_log(self):
        log = self.board.log()
        for secret in [KEY, self.identity[1], *WIFI.values(), *(t for t in TOKENS.values() if t)]:
            if secret in log:
                self.failures.append("a secret in the board's log")
        for bad in ("Traceback", "MemoryError", "safe mode"):
            if bad in log:
                self.failures.append(f"{bad!r} in the board's log")

    def summary(self, cuts):
        kinds = ", ".join(f"{k} {n}" for k, n in self.counts.items())
        return f"soak: {cuts} cuts, {len(self.failures)} failures ({kinds}; {self.mid_write} mid-write)"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=int, default=200, help="how many power cuts (default 200)")
    p.add_argument("--seed", type=int, default=None, help="the random seed (default: a new one, printed)")
    p.add_argument("--chip", choices=("esp8266", "esp32"), default="esp8266", help="the chip model (default esp8266)")
    p.add_argument("--dir", help="where the board's flash goes (default: a temporary directory)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"soak: seed {seed}, {args.chip}", flush=True)
    workdir = args.dir or tempfile.mkdtemp(prefix="esplink-soak-")
    t0 = time.monotonic()
    soak = Soak(workdir, args.chip, random.Random(seed), out=lambda line: print(line, flush=True))
    try:
        failures = soak.run(args.cuts)
    finally:
        soak.stop()
    for f in failures:
        print("soak: FAILED", f)
    print(soak.summary(args.cuts) + f", {time.monotonic() - t0:.0f} s, seed {seed}, flash {soak.flash}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
