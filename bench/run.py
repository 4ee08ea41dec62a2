"""The benchmarks on the virtual board (32-bit MicroPython VM), printed as tables:
pairing (here), the cloud link and the cloud under a fleet (bench/cloud.py, bench/fleet.py)
and touch-mode decoding (bench/touch.py).

    ./dev bench [pairing] [cloud] [touch]   (or: .venv/bin/python bench/run.py ...; default all)

Heap figures are the firmware's own: the stand-in for `network`/`machine` and the
runner hold `heap_base` bytes that a chip's C modules would not take from the heap.
"""
import http.client
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from esplink import CommandError
from esplink.board.deploy import state_dir
from esplink.board.process import BoardProcess
from esplink.phone import pair_ap

WIFI = {"bench": "bench-password"}
SCAN = [("bench", -50), ("neighbour", -70), ("cafe guest", -82), ("upstairs 5G", -64)]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def pairing_flow(flash, heap="38k", heap_probe=False):
    """Boot unpaired, pair, reach online. Returns the running board."""
    board = BoardProcess(flash, WIFI, heap=heap, heap_probe=heap_probe).start()
    try:
        board.expect(r"^led: pairing", timeout=20)
        pair_ap(f"127.0.0.1:{board.http_port}", "bench", WIFI["bench"], server="127.0.0.1:8443", token="t" * 40)
        board.expect(r"^mode: online", timeout=20)
    except BaseException:
        board.stop()  # a board that fails here (a small heap) would otherwise outlive the bench
        raise
    return board


def mpy_bytes(flash):
    # the firmware's build, as it goes into the ROM partition (.vboard/romfs.img)
    files = list((state_dir(flash) / "build").rglob("*.mpy"))
    part = lambda name: sum(p.stat().st_size for p in files if name in p.parts)
    return sum(p.stat().st_size for p in files), part("pairing"), part("espcloud"), len(files)


def browse(port):
    """What a phone's browser does on joining the AP: the OS probe, then the portal."""
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    probe.request("GET", "/generate_204", headers={"Host": "connectivitycheck.gstatic.com"})
    probe.getresponse().read()
    probe.close()
    page = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    page.request("GET", "/", headers={"Accept": "text/html"})
    body = page.getresponse().read()
    page.close()
    return body


def dns_query(port, name="connectivitycheck.gstatic.com"):
    labels = b"".join(bytes((len(p),)) + p for p in name.encode().split(b".")) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x01\x00\x01",
                 ("127.0.0.1", port))
        return s.recv(512)


def heap_peak(tmp):
    """The pairing world's peak with the portal serving (DNS queries, the OS probe,
    the page twice), then POST /ap, the join and the save: the whole pairing boot, as
    the heap probe reports it at the reset into the network world. Also the peak up to
    the reply to POST /ap, and the page's size as served."""
    board = BoardProcess(tmp / "probe", WIFI, heap_probe=True, scan=SCAN).start()
    try:
        board.expect(r"^led: pairing", timeout=20)
        time.sleep(0.5)
        for _ in range(2):
            dns_query(board.dns_port)
            page = browse(board.http_port)
        pair_ap(f"127.0.0.1:{board.http_port}", "bench", WIFI["bench"], server="127.0.0.1:8443", token="t" * 40)
        state = board.control("heap")
        whole = int(board.expect(r"^heap: peak (\d+) of this boot", timeout=20).group(1))
        board.expect(r"^mode: online", timeout=20)
    finally:
        board.stop()
    return whole, state["heap_peak"] - state["heap_base"], state["heap_base"], len(page)


def flood_peak(tmp, bursts=5, width=50):
    """The pairing world's peak under bursts of `width` simultaneous clients (a third
    of them loading the page, the rest GET /device), and how many were answered."""
    import threading

    board = BoardProcess(tmp / "flood", WIFI, heap_probe=True, scan=SCAN).start()
    answered = 0
    try:
        board.expect(r"^led: pairing", timeout=20)
        port = board.http_port
        page = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/html\r\n\r\n" % port
        device = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"
        seen = []

        def client(i):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                    s.sendall(page if i % 3 == 0 else device)
                    seen.append(s.recv(64).startswith(b"HTTP/1.1 200"))
            except OSError:
                seen.append(False)

        t0 = time.perf_counter()
        for _ in range(bursts):
            threads = [threading.Thread(target=client, args=(i,)) for i in range(width)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - t0
        answered = sum(seen)
        state = board.control("heap")
        if "out of memory" in board.log() or "board: " in board.log().split("\n", 1)[1]:
            raise RuntimeError("the board ran out of memory or reset under the flood:\n" + board.log())
    finally:
        board.stop()
    return state["heap_peak"] - state["heap_base"], answered, bursts * width, elapsed


# requests that never end, each as large as the pairing server lets one be
STUFFED = {
    "a 0.95 KB head (padded with a header nobody reads)": b"GET / HTTP/1.1\r\nHost: 10.10.7.1\r\nX-Pad: " + b"a" * 950,
    "a 0.5 KB request line": b"GET /?" + b"a" * 480,
    "a POST /ap 8 bytes short of its 448 B body": (
        b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nContent-Length: 448\r\n\r\n" + b"a" * 440),
}


def stuffed_peak(tmp, request, n=8):
    """The pairing world's peak with `n` connections each holding `request`, which
    never ends, then a phone's GET /device answered."""
    board = BoardProcess(tmp / ("stuffed-%d" % len(request)), WIFI, heap_probe=True, scan=SCAN).start()
    stuffers = []
    try:
        board.expect(r"^led: pairing", timeout=20)
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", board.http_port), timeout=5)
            s.sendall(request)
            stuffers.append(s)
        time.sleep(3)
        conn = http.client.HTTPConnection("127.0.0.1", board.http_port, timeout=15)
        conn.request("GET", "/device")
        answered = conn.getresponse().status == 200
        conn.close()
        state = board.control("heap")
    finally:
        for s in stuffers:
            s.close()
        board.stop()
    return state["heap_peak"] - state["heap_base"], answered


def chromium_load(tmp, n=20):
    """The portal's page load in headless Chromium over loopback (navigation to the load
    event), median and p95 of n, and the page's bytes on the wire."""
    from playwright.sync_api import sync_playwright

    board = BoardProcess(tmp / "chromium", WIFI, scan=SCAN).start()
    times = []
    try:
        board.expect(r"^led: pairing", timeout=20)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
                for _ in range(n + 2):
                    t0 = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{board.http_port}/", wait_until="load")
                    times.append(time.perf_counter() - t0)
            finally:
                browser.close()
    finally:
        board.stop()
    times = sorted(times[2:])  # the first loads start the browser's own machinery
    return statistics.median(times) * 1000, times[int(len(times) * 0.95) - 1] * 1000


def smallest_heap(tmp):
    """Bisect the VM heap (KiB) for the smallest one the whole flow completes in."""
    lo, hi = 8, 38  # lo fails (assumed), hi passes (checked)
    def passes(kib):
        board = None
        try:
            board = pairing_flow(tmp / f"heap{kib}", heap=f"{kib}k")
            return "MemoryError" not in board.log() and "Traceback" not in board.log()
        except (CommandError, OSError):
            return False
        finally:
            if board:
                board.stop()
    if not passes(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


def get_device_round_trip(tmp, n=200):
    board = BoardProcess(tmp / "rtt", WIFI).start()
    try:
        board.expect(r"^led: pairing")
        conn = http.client.HTTPConnection("127.0.0.1", board.http_port, timeout=5)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/device", headers={"Connection": "Keep-Alive"})
            json.loads(conn.getresponse().read())
            times.append(time.perf_counter() - t0)
        conn.close()
    finally:
        board.stop()
    return statistics.median(times) * 1000, sorted(times)[int(n * 0.95)] * 1000


def post_to_joined(tmp, rounds=5):
    board = BoardProcess(tmp / "join", WIFI).start()
    times = []
    try:
        board.expect(r"^led: pairing")
        for _ in range(rounds):
            t0 = time.perf_counter()
            pair_ap(f"127.0.0.1:{board.http_port}", "bench", WIFI["bench"])
            board.expect(r"^pairing: saved")
            times.append(time.perf_counter() - t0)
            board.expect(r"^mode: online")
            board.press()
            board.expect(r"^led: pairing")
    finally:
        board.stop()
    return statistics.median(times) * 1000


def pairing_table():
    with tempfile.TemporaryDirectory(prefix="esplink-bench-") as tmp:
        tmp = Path(tmp)
        peak, serving, base, page_bytes = heap_peak(tmp)
        flood, answered, flooded, flood_s = flood_peak(tmp)
        stuffed = [(what, *stuffed_peak(tmp, request)) for what, request in STUFFED.items()]
        total, pairing, espcloud, nfiles = mpy_bytes(tmp / "probe")
        template = (state_dir(tmp / "probe") / "build" / "pairing" / "portal.html").stat().st_size
        smallest = smallest_heap(tmp)
        rtt_med, rtt_p95 = get_device_round_trip(tmp)
        joined = post_to_joined(tmp)
        load_med, load_p95 = chromium_load(tmp)
    rows = [
        ("firmware heap peak in the pairing world, boot to reset (DNS, probe, page x2, POST /ap, join, save)",
         f"{peak / 1024:.1f} KB", "≤ 16 KB"),
        ("  of which up to the reply to POST /ap", f"{serving / 1024:.1f} KB", ""),
        ("  under a flood: 5 bursts of 50 simultaneous clients (page or GET /device)", f"{flood / 1024:.1f} KB", "≤ 16 KB"),
        ("    answered / of / in", f"{answered} / {flooded} / {flood_s:.1f} s ("
         + ("" if answered == flooded else "the rest waited in the listen backlog past their 15 s; ")
         + "no reset, no MemoryError)", ""),
    ] + [
        (f"  8 connections each holding {what} that never ends, then GET /device",
         f"{peak_ / 1024:.1f} KB (GET /device {'answered' if ok else 'NOT answered'})", "≤ 16 KB")
        for what, peak_, ok in stuffed
    ] + [
        ("stand-ins + runner heap (not on a chip, excluded above)", f"{base / 1024:.1f} KB", ""),
        ("smallest VM heap the whole pairing flow passes in", f"{smallest} KB" if smallest else "fails at 38 KB", "≤ 38 KB"),
        (f"total .mpy ({nfiles} files)", f"{total} B", ""),
        ("  of which pairing/ (not needed once online)", f"{pairing} B", ""),
        ("  of which espcloud/ (not needed while pairing)", f"{espcloud} B", ""),
        ("portal page: template on flash / as served (4 networks)", f"{template} / {page_bytes} B", ""),
        ("portal page load in headless Chromium over loopback (median / p95, N=20)",
         f"{load_med:.1f} / {load_p95:.1f} ms", ""),
        ("GET /device round trip, keep-alive (median / p95)", f"{rtt_med:.2f} / {rtt_p95:.2f} ms", ""),
        ("POST /ap -> joined and saved (median of 5)", f"{joined:.0f} ms", ""),
    ]
    print("| measure | value | target |\n|---|---|---|")
    for row in rows:
        print("| %s | %s | %s |" % row)
    print("\nVM: Debian micropython 1.25.0 i386, -X heapsize=38k unless stated; loopback; virtual radio associates in "
          "300 ms; the device waits 300 ms for its reply to leave before the AP goes.")
    return 0


def main(argv):
    import cloud  # bench/cloud.py, beside this file
    import fleet  # bench/fleet.py
    import touch  # bench/touch.py

    benches = {"pairing": pairing_table, "cloud": lambda: cloud.main() | fleet.main(), "touch": touch.main}
    chosen = argv or list(benches)
    unknown = [name for name in chosen if name not in benches]
    if unknown:
        print(f"usage: bench/run.py [{'] ['.join(benches)}]  (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    status = 0
    for i, name in enumerate(chosen):
        print(("\n" if i else "") + f"**{name}**\n", flush=True)
        status |= benches[name]()
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
