"""Floods against the pairing server on the virtual board (esp8266 model, 38 KB heap):
bursts of simultaneous connections, connections that never speak, and a VM that
dies under it all. Each test ends with a phone pairing: the board never reset, its
identity unchanged."""
import http.client
import json
import socket
import threading
import time

import pytest

from board_driver import HOME, kept_identity
from esplink.phone import pair_ap

BURSTS, WIDTH = 5, 50
KEY = "f100d" * 8  # the cloud's device key, as flashing writes it
GET_DEVICE = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"
GET_PAGE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/html\r\n\r\n"  # the portal's own host


@pytest.fixture
def portal(make_board):
    board = make_board(heap_probe=True, device_key=KEY)
    board.expect(r"^led: pairing")
    return board


def identity(board):
    """What GET /device says, and the identity and device key the board keeps."""
    return _get_device(board), kept_identity(board.flash)


def _get_device(board):
    conn = http.client.HTTPConnection("127.0.0.1", board.http_port, timeout=10)
    try:
        conn.request("GET", "/device")
        return conn.getresponse().read()
    finally:
        conn.close()


def burst(port, width):
    """`width` clients at once, each a request (/device or the page) and its answer;
    the status lines seen (b"" for none within 15 s)."""
    seen = [b""] * width

    def client(i):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
                s.sendall(GET_PAGE % port if i % 3 == 0 else GET_DEVICE)
                seen[i] = s.recv(64).split(b"\r\n")[0]
        except OSError:
            pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def assert_unharmed(board, before):
    log = board.log()
    for sign in ("out of memory", "MemoryError", "Traceback", "board: ", "error:"):
        assert sign not in log.split("\n", 1)[1], f"{sign!r} in the board's output:\n{log}"
    assert identity(board) == before
    ident, reply = pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"])
    assert reply == {"error": 0}
    board.expect(r"^pairing: saved")
    assert kept_identity(board.flash) == before[1] and before[1][3] == KEY


def assert_paired_unharmed(board, before, ident):
    """The phone that paired met the identity the flood met, the board saved, and up to
    the save (after it comes the designed reset, "board: reset") nothing went wrong."""
    board.expect(r"^pairing: saved")
    log = board.log().split("pairing: saved")[0]
    assert "out of memory" not in log and "board: " not in log.split("\n", 1)[1]
    assert json.loads(before[0]) == ident
    assert kept_identity(board.flash) == before[1] and before[1][3] == KEY


def test_bursts_of_simultaneous_connections(portal):
    before = identity(portal)
    answered = 0
    for _ in range(BURSTS):
        seen = burst(portal.http_port, WIDTH)
        # every client that got an answer got a whole, right one; the rest waited in the
        # listen backlog, outside the heap, or were refused there
        assert all(line in (b"", b"HTTP/1.1 200 OK") for line in seen), set(seen)
        answered += seen.count(b"HTTP/1.1 200 OK")
    # how many get in within their 15 s varies with the kernel's SYN retries (typically
    # all of them; the fewest seen on a 2-core machine: two thirds)
    assert answered >= BURSTS * WIDTH // 2, answered
    heap = portal.control("heap")
    # the pairing world's own peak is ~15.5 KB (README, Benchmarks): a flood adds what
    # the server's allowance lets connections take (0.7 KB), not fifty connections
    assert heap["heap_peak"] - heap["heap_base"] < 16.5 * 1024, heap
    assert_unharmed(portal, before)


def test_connections_that_never_speak_do_not_lock_a_phone_out(portal):
    before = identity(portal)
    silent = []
    try:
        for _ in range(WIDTH):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", portal.http_port))
            silent.append(s)
        time.sleep(0.5)
        t0 = time.monotonic()
        ident, reply = pair_ap(f"127.0.0.1:{portal.http_port}", "home", HOME["home"], timeout=15)
        # a silent connection is closed for a newcomer after 1 s; the phone waits behind
        # the ones in the backlog, not behind all fifty
        assert reply == {"error": 0} and time.monotonic() - t0 < 12
    finally:
        for s in silent:
            s.close()
    assert_paired_unharmed(portal, before, ident)


# requests that never end, each as large as the server lets one be: a head padded with
# a header nobody reads (streamed through, never held), a request line, a body
STUFFED = {
    "padded head": b"GET / HTTP/1.1\r\nHost: 10.10.7.1\r\nX-Pad: " + b"a" * 950,
    "request line": b"GET /?" + b"a" * 480,
    "body": b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nContent-Length: 448\r\n\r\n" + b"a" * 440,
}


@pytest.mark.parametrize("kind", list(STUFFED))
def test_requests_that_never_end_share_an_allowance_and_do_not_lock_a_phone_out(portal, kind):
    # eight of them: five connections holding ~1 KB each would be ~6 KB of heap; all
    # connections and what they hold share the server's 0.7 KB allowance instead
    before = identity(portal)
    settled = portal.control("heap")["heap_peak"]
    stuffers = []
    try:
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", portal.http_port), timeout=5)
            s.sendall(STUFFED[kind])
            stuffers.append(s)
        time.sleep(1.5)
        t0 = time.monotonic()
        ident, reply = pair_ap(f"127.0.0.1:{portal.http_port}", "home", HOME["home"], timeout=15)
        assert reply == {"error": 0} and time.monotonic() - t0 < 12
        grown = portal.control("heap")["heap_peak"] - settled
        assert grown < 1.25 * 1024, grown
    finally:
        for s in stuffers:
            s.close()
    assert_paired_unharmed(portal, before, ident)


CRASH_ONCE = """
# the first boot's VM dies of SIGSEGV, as the issue's flood made it do; later boots run
import ffi, os
try:
    os.stat("crashed-once")
except OSError:
    open("crashed-once", "w").close()
    libc = ffi.open("libc.so.6")
    libc.func("i", "kill", "ii")(libc.func("i", "getpid", "")(), 11)
"""


def test_a_vm_that_dies_is_booted_again_with_its_flash(make_board, tmp_path):
    prelude = tmp_path / "crash_once.py"
    prelude.write_text(CRASH_ONCE)
    board = make_board(prelude=prelude)
    board.expect(r"^board: crash \(the VM died of signal 11\); booting again")
    board.expect(r"^led: pairing")
    device, kept = identity(board)
    assert json.loads(device)["deviceid"] == kept[0] == board.settings()["deviceid"]
