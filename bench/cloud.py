"""Cloud-link benchmarks: the firmware on the virtual board (32-bit MicroPython VM,
38 KB heap) against the local cloud over TLS, beside the cheapest possible device
(bench/echo_device.py) on the same VM, transport and cloud as the floor.

    ./dev bench            (both tables)   or: .venv/bin/python bench/cloud.py

Everything runs on 127.0.0.1 with free ports and temporary directories, and stops
on its own. Exit status 1 only if something broke, never for a missed target.
"""
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from esplink import CommandError, vm
from esplink.board import deploy
from esplink.board.process import BoardProcess, Process
from esplink.cloud import harness, store
from esplink.cloud.client import Client
from esplink.phone import pair_ap

HERE = Path(__file__).resolve().parent
WIFI = {"bench": "bench-password"}
RPC_PATH = "/v1/device/rpc/"
ACTIONS = ("LED_ON", "LED_OFF")
N = 200  # timed round trips per measure
WARMUP = 20
REST_RATE_S = 3.0
DELIVER_RATE_S = 2.0
PAIRINGS = 3
HEAP_RPCS = 50
# a line that means the board broke: an exhausted heap, a crash, a lost cloud link
BROKE = r"MemoryError|Traceback|^error:|^cloud: error|^cloud: refused|^cloud: dropped a frame"


class Broke(Exception):
    """Something did not work (not a missed target). `line`: the board's line that
    said so; `log`: what the board printed."""

    def __init__(self, message, line=None, log=None):
        super().__init__(message)
        self.line, self.log = line, log


def expect(board, pattern, timeout=20.0):
    """board.expect(pattern), but a line matching BROKE fails at once."""
    m = board.expect(f"(?:{pattern})|{BROKE}", timeout=timeout)
    if re.search(BROKE, m.string):
        time.sleep(0.3)  # the rest of a traceback
        raise Broke(f"board printed {m.string!r} while waiting for {pattern!r}:\n" + board.log(),
                    m.string, board.log())
    return m


def ms(seconds):
    return seconds * 1000


def med_p95(times):
    s = sorted(times)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


class Bench:
    """The local cloud, its store (to make devices) and a REST client."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cloud = harness.start_in_thread(tmp / "cloud")
        self.store = store.Store(tmp / "cloud")
        self.client = Client("127.0.0.1", self.cloud.api_port, self.cloud.ca_file)
        self.ca_der = self.cloud.cloud.paths.ca_der  # both devices verify the cloud with it
        self.server = f"127.0.0.1:{self.cloud.tls_port}"

    def close(self):
        self.store.close()
        self.cloud.stop()


class Device:
    def __init__(self, device_id, owner, proc, tls_heap=None):
        self.id, self.owner, self.proc, self.tls_heap = device_id, owner, proc, tls_heap


# ---- the devices

def start_echo(b, wait_on="fd"):
    """wait_on "fd": the floor; "tls": waits on the TLS object as asyncio does."""
    dev = b.store.create_device(f"echo-{wait_on}")
    token = secrets.token_hex(20)
    argv = vm.micropython() + ["-X", "heapsize=64k", str(HERE / "echo_device.py"), "127.0.0.1",
                               str(b.cloud.tls_port), str(b.ca_der), dev["master_key"], token, wait_on]
    proc = Process(argv)
    try:
        proc.expect(r"^echo: identified", timeout=20)
    except CommandError:
        proc.stop()
        raise Broke("the echo device did not identify:\n" + proc.log())
    m = re.search(r"TLS holds (\d+) B", proc.log())
    return Device(dev["id"], b.client.authorize(token), proc, int(m[1]) if m else None)


class Paired:
    def __init__(self, board, device, saved_s, identified_s):
        self.board, self.device = board, device
        self.saved_s, self.identified_s = saved_s, identified_s


def pair_board(b, name, heap="38k", heap_probe=False, chip="esp8266"):
    """A fresh flash and a fresh cloud device: boot, pair, wait for identified."""
    dev = b.store.create_device(name)
    board = BoardProcess(b.tmp / name, WIFI, heap=heap, heap_probe=heap_probe, chip=chip,
                         device_key=dev["master_key"], ca=b.ca_der).start()
    try:
        expect(board, r"^led: pairing", 30)
        token = secrets.token_hex(20)
        t0 = time.perf_counter()
        pair_ap(f"127.0.0.1:{board.http_port}", "bench", WIFI["bench"], b.server, token)
        expect(board, r"^pairing: saved")
        t1 = time.perf_counter()
        expect(board, r"^cloud: identified", 30)
        t2 = time.perf_counter()
        owner = b.client.authorize(token)
    except BaseException:
        board.stop()
        raise
    return Paired(board, Device(dev["id"], owner, board), t1 - t0, t2 - t0)


# ---- round trips

def rest_rpc(b, dev, i):
    status, reply = b.client.rpc(dev.owner, ACTIONS[i % 2])
    if status != 200 or reply.get("status") != 200:
        raise Broke(f"RPC {ACTIONS[i % 2]}: HTTP {status} {reply}")


def rest_round_trips(b, dev):
    for i in range(WARMUP):
        rest_rpc(b, dev, i)
    times = []
    for i in range(N):
        t0 = time.perf_counter()
        rest_rpc(b, dev, i)
        times.append(time.perf_counter() - t0)
    return times


def rest_rate(b, dev, seconds=REST_RATE_S):
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        rest_rpc(b, dev, count)
        count += 1
    return count / (time.perf_counter() - t0)


async def _deliveries(cloud, dev, n=None, seconds=None):
    """On the cloud's own loop: Cloud.deliver() timed one by one (cloud -> device ->
    reply matched, no REST side at all)."""
    times, i, start = [], 0, time.perf_counter()
    while (i < n) if n is not None else (time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        reply = await cloud.deliver(dev.id, dev.owner, "GET", RPC_PATH, {"action": ACTIONS[i % 2]})
        times.append(time.perf_counter() - t0)
        if reply.get("status") != 200:
            raise Broke(f"delivery {ACTIONS[i % 2]}: {reply}")
        i += 1
    return times, time.perf_counter() - start


def deliver_round_trips(b, dev):
    b.cloud.call(_deliveries(b.cloud.cloud, dev, n=WARMUP), timeout=60)
    return b.cloud.call(_deliveries(b.cloud.cloud, dev, n=N), timeout=120)[0]


def deliver_rate(b, dev, seconds=DELIVER_RATE_S):
    times, elapsed = b.cloud.call(_deliveries(b.cloud.cloud, dev, seconds=seconds), timeout=seconds + 60)
    return len(times) / elapsed


def round_trip_figures(b, dev, rates=True):
    figures = {"rest": med_p95(rest_round_trips(b, dev)), "deliver": med_p95(deliver_round_trips(b, dev))}
    if rates:
        figures.update(rest_rate=rest_rate(b, dev), deliver_rate=deliver_rate(b, dev))
    return figures


def echo_figures(b, wait_on, rates=True):
    echo = start_echo(b, wait_on)
    try:
        return dict(round_trip_figures(b, echo, rates), tls_heap=echo.tls_heap)
    finally:
        echo.proc.stop()


# ---- heap

def heap_session(b, chip="esp8266"):
    """Firmware heap peak over the network world's boot (join, TLS, activate,
    identify), then HEAP_RPCS deliveries: LED_ON/LED_OFF and plug-status POST/GET.
    On the esp8266 model axTLS's memory is on the heap, as on the chip; the VM's own
    TLS objects are left out. Also the event loop's longest stall (button polls)."""
    p = pair_board(b, f"heap-{chip}", heap_probe=True, chip=chip)
    board, dev = p.board, p.device
    try:
        time.sleep(0.3)
        after_identify = board.control("state")
        for i in range(HEAP_RPCS):
            if i % 5 == 3:
                status, reply = b.client.datapoint(dev.owner, "plug-status", {"x": i % 2})
            elif i % 5 == 4:
                status, reply = b.client.datapoint(dev.owner, "plug-status")
            else:
                status, reply = b.client.rpc(dev.owner, ACTIONS[i % 2])
            if status != 200 or reply.get("status") != 200:
                raise Broke(f"heap run, request {i}: HTTP {status} {reply}")
        time.sleep(0.3)  # a few more samples
        state = board.control("state")
        log = board.log()
        if re.search(BROKE, log, re.M):
            raise Broke("the heap board reported an error:\n" + log)
        # the boot that runs online began at the reset that followed "pairing: saved"
        world = log[log.index("pairing: saved"):]
        reset_into_network = "\nboard: reset\n" in world and "mode: pair" not in world
    finally:
        board.stop()
    return {"peak": state["heap_peak"] - state["heap_base"],
            "peak_identify": after_identify["heap_peak"] - after_identify["heap_base"],
            "base": state["heap_base"], "reset_into_network": reset_into_network, "loop_gap": state["loop_gap"]}


class ProbeBoard(BoardProcess):
    """A board with bench/modules_probe.py run before boot: the VM prints its loaded
    modules as they change."""

    def __init__(self, flash, device_key, ca):
        super().__init__(flash, WIFI, device_key=device_key, ca=ca, prelude=HERE / "modules_probe.py")
        self.start()

    def modules(self):
        """The last module list the probe printed."""
        probes = [line for line in self.lines if line.startswith("probe: modules")]
        return probes[-1].split()[2:] if probes else []


def modules_online(b):
    """Pair a probed board; the modules loaded while pairing (a check that the probe
    sees them) and while online after identify and a few RPCs."""
    dev = b.store.create_device("probe")
    board = ProbeBoard(b.tmp / "probe", dev["master_key"], b.ca_der)
    try:
        expect(board, r"^led: pairing", 30)
        time.sleep(0.3)
        pairing_world = board.modules()
        token = secrets.token_hex(20)
        pair_ap(f"127.0.0.1:{board.http_port}", "bench", WIFI["bench"], b.server, token)
        expect(board, r"^cloud: identified", 30)
        owner = b.client.authorize(token)
        for i in range(10):
            rest_rpc(b, Device(dev["id"], owner, None), i)
        time.sleep(0.3)
        network_world = board.modules()
    finally:
        board.stop()
    pairing = [m for m in pairing_world if m.split(".")[0] == "pairing"]
    resident = [m for m in network_world if m.split(".")[0] == "pairing"]
    return pairing, resident, network_world


def smallest_heap(b, start=38, step=2, floor=16):
    """Step --heap down from `start` KB until pair -> identified -> 10 RPCs fails."""
    smallest, failure = None, None
    for kib in range(start, floor - 1, -step):
        p = None
        try:
            p = pair_board(b, f"heap{kib}", heap=f"{kib}k")
            for i in range(10):
                rest_rpc(b, p.device, i)
            log = p.board.log()
            bad = [ln for ln in log.splitlines() if re.search(BROKE, ln)]
            if bad:
                raise Broke("after the RPCs: " + bad[0], bad[0], log)
            smallest = kib
        except (Broke, CommandError, OSError) as e:
            failure = (kib, _what_failed(e))
            break
        finally:
            if p:
                p.board.stop()
    return smallest, failure


def _what_failed(e):
    """The board's error line and what it was doing (its last event line before)."""
    if not isinstance(e, Broke) or e.line is None:
        return str(e).splitlines()[0]
    lines = e.log.splitlines()
    before = [ln for ln in lines[:lines.index(e.line)] if not re.search(BROKE, ln)]
    after = [ln for ln in lines[lines.index(e.line):] if ln.startswith(("MemoryError", "OSError", "ValueError"))]
    detail = f"; {after[0]}" if after and after[0] != e.line else ""
    return f"{e.line}{detail} (after \"{before[-1]}\")" if before else e.line


# ---- the table

def vm_version():
    out = subprocess.run(vm.micropython() + ["-c", "import sys; print(sys.version)"],
                         capture_output=True, text=True, timeout=20).stdout.strip()
    return out.split("; ", 1)[-1] if out else "?"


def measure():
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="esplink-bench-cloud-") as tmp:
        b = Bench(Path(tmp))
        try:
            floor = echo_figures(b, "fd")
            tls_wait = echo_figures(b, "tls", rates=False)
            paired = []
            try:
                for i in range(PAIRINGS):
                    paired.append(pair_board(b, f"pair{i}"))
                    if i:
                        paired[-1].board.stop()
                fw = round_trip_figures(b, paired[0].device)
            finally:
                for p in paired:
                    p.board.stop()
            heap = heap_session(b)
            heap32 = heap_session(b, "esp32")
            pairing_mods, resident, online_mods = modules_online(b)
            smallest, failure = smallest_heap(b)
        finally:
            b.close()
    return dict(floor=floor, tls_wait=tls_wait, fw=fw, heap=heap, heap32=heap32, paired=paired, pairing_mods=pairing_mods,
                resident=resident, online_mods=online_mods, smallest=smallest, failure=failure,
                seconds=time.perf_counter() - t_start)


def table(r):
    floor, tls_wait, fw, heap = r["floor"], r["tls_wait"], r["fw"], r["heap"]
    rest_ratio = fw["rest"][0] / floor["rest"][0]
    dev_ratio = fw["deliver"][0] / floor["deliver"][0]
    identified = statistics.median(p.identified_s for p in r["paired"])
    saved = statistics.median(p.saved_s for p in r["paired"])
    kb = lambda n: f"{n / 1024:.1f} KB"
    resident = ("none" if not r["resident"] else ", ".join(r["resident"]))
    rows = [
        ("RPC round trip, REST call -> device -> reply (median / p95, N=200)",
         f"{ms(fw['rest'][0]):.2f} / {ms(fw['rest'][1]):.2f} ms", ""),
        ("  raw echo device, same VM, TLS and cloud (the floor)",
         f"{ms(floor['rest'][0]):.2f} / {ms(floor['rest'][1]):.2f} ms", ""),
        ("  firmware / floor (medians)", f"{rest_ratio:.2f}×", "≤ 3×"),
        ("  echo device waiting on the TLS object, as asyncio does",
         f"{ms(tls_wait['rest'][0]):.2f} / {ms(tls_wait['rest'][1]):.2f} ms", ""),
        ("device round trip, cloud deliver() -> reply matched (median / p95, N=200)",
         f"{ms(fw['deliver'][0]):.2f} / {ms(fw['deliver'][1]):.2f} ms", ""),
        ("  raw echo device (the floor)",
         f"{ms(floor['deliver'][0]):.2f} / {ms(floor['deliver'][1]):.2f} ms", ""),
        ("  firmware / floor (medians)", f"{dev_ratio:.2f}×", "≤ 3×"),
        ("  echo device waiting on the TLS object, as asyncio does (VM polls it every 1 ms)",
         f"{ms(tls_wait['deliver'][0]):.2f} / {ms(tls_wait['deliver'][1]):.2f} ms", ""),
        ("  firmware / that (medians)", f"{fw['deliver'][0] / tls_wait['deliver'][0]:.2f}×", ""),
        ("RPCs per second, sequential REST calls (firmware / floor)",
         f"{fw['rest_rate']:.0f} / {floor['rest_rate']:.0f}", ""),
        ("deliveries per second, sequential deliver() (firmware / floor)",
         f"{fw['deliver_rate']:.0f} / {floor['deliver_rate']:.0f}", ""),
        (f"POST /ap -> cloud: identified (median of {len(r['paired'])} fresh boards)", f"{ms(identified):.0f} ms", ""),
        ("  of which POST /ap -> pairing: saved", f"{ms(saved):.0f} ms", ""),
        (f"esp8266 model: firmware heap peak incl. axTLS, cloud session (identify + {HEAP_RPCS} RPCs, "
         "sampled every 20 ms)", kb(heap["peak"]), ""),
        ("  of which by identify", kb(heap["peak_identify"]), ""),
        ("  free heap at that peak (of 38 KB)", kb(38 * 1024 - heap["peak"]), "≥ 4 KB"),
        ("  longest event-loop stall (between 20 ms button polls; the handshake blocks)",
         f"{heap['loop_gap']} ms", "< 1000 ms"),
        ("esp32 model: firmware heap peak, same session (mbedTLS objects on the heap, buffers not)",
         kb(r["heap32"]["peak"]), ""),
        ("  longest event-loop stall", f"{r['heap32']['loop_gap']} ms", ""),
        ("pairing modules resident while online (sys.modules on the VM)", resident, "none"),
        ("esp8266 model: smallest --heap: pair -> identified -> 10 RPCs (2 KB steps down from 38)",
         f"{r['smallest']} KB" if r["smallest"] else "fails at 38 KB", "≤ 38 KB"),
    ]
    out = ["| measure | value | target |", "|---|---|---|"]
    out += ["| %s | %s | %s |" % row for row in rows]
    notes = [
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, VM {vm_version()} "
        f"(i386), firmware -X heapsize=38k + {deploy.STANDIN_HEAP / 1024:g}k for the stand-ins unless stated, echo device 64k; "
        f"loopback; bench took {r['seconds']:.0f} s.",
        "REST round trips include the REST side's own TLS handshake (one request per connection); "
        "deliver() round trips are the device's share. "
        "The firmware prints a log line per RPC (captured), as a real board does.",
        f"Heap: the live heap after a collection at every button poll, minus the stand-ins' "
        f"{kb(heap['base'])}. esp8266 model: axTLS's own allocations (11.5 KB at the handshake, "
        "8.7 KB live) are made on the heap as on the chip, and the VM's mbedTLS objects (a chip's "
        "axTLS object is 28 B) are left out; the firmware holds 12 KB for axTLS between connections "
        "(espcloud/transport.py). esp32 model: mbedTLS's context and socket objects are on the "
        f"heap as on the chip ({kb(floor['tls_heap'] or 0)} in the echo device), its record buffers "
        "in the ESP-IDF heap.",
        f"Pairing not resident: the log shows the reset into the network world after "
        f"\"pairing: saved\" ({'yes' if heap['reset_into_network'] else 'NO'}); a probe task on "
        f"the VM lists sys.modules: {len(r['pairing_mods'])} pairing modules while pairing "
        f"({' '.join(r['pairing_mods'])}), {len(r['resident'])} online after identify + 10 RPCs.",
    ]
    if r["failure"]:
        kib, why = r["failure"]
        notes.append(f"Below the smallest heap, at {kib} KB: {why}")
    return "\n".join(out + notes)


def main():
    try:
        results = measure()
    except (Broke, CommandError, OSError) as e:
        print(f"bench/cloud.py: broke: {e}", file=sys.stderr)
        return 1
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
