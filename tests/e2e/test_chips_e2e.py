"""The firmware on each chip's model (--chip esp8266 at 38 KB with axTLS's memory on
the heap, --chip esp32), against the local cloud over loopback TLS: what the real
chips do that the plain VM did not."""
import json
import re
import secrets
import socket
import threading
import time
from datetime import datetime, timezone

import pytest

from board_driver import HOME

from esplink.cloud import certs, harness, store
from esplink.cloud.client import Client
from esplink.phone import pair_ap

CHIPS = ["esp8266", "esp32"]


@pytest.fixture
def cloud(tmp_path):
    running = [harness.start_in_thread(tmp_path / "cloud")]
    yield running
    running[-1].stop()


def online_board(make_board, c, server_addr=None, **kw):
    device = store.Store(c.data_dir).create_device("chip")
    board = make_board(device_key=device["master_key"], ca=c.ca_file, **kw)
    token = secrets.token_hex(20)
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], server_addr or f"127.0.0.1:{c.tls_port}", token)
    board.expect(r"^cloud: identified", timeout=30)
    owner = Client("127.0.0.1", c.api_port, c.ca_file).authorize(token)
    return board, device, owner


def rpc(c, owner, action):
    return Client("127.0.0.1", c.api_port, c.ca_file).rpc(owner, action)


def no_trouble(log):
    bad = [ln for ln in log.splitlines() if re.search(r"^error:|MemoryError|Traceback|crash|watchdog reset", ln)]
    assert not bad, bad


# ---- the TLS handshake on the wire


class RecordProxy:
    """Relays board <-> cloud on loopback and reads the TLS record headers of both
    directions: the first application-data record from the board must come after the
    cloud's ChangeCipherSpec and Finished."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.sessions = []  # per connection: [(direction, record type)]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                board, _ = self.listener.accept()
            except OSError:
                return
            cloud = socket.create_connection(("127.0.0.1", self.target))
            records = []
            self.sessions.append(records)
            for src, dst, who in ((board, cloud, "board"), (cloud, board, "cloud")):
                threading.Thread(target=self._pipe, args=(src, dst, who, records), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, who, records):
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                    records.append((who, buf[0]))
                    buf = buf[5 + int.from_bytes(buf[3:5], "big"):]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def first_app_byte_after_handshake(records):
    """True when every board application-data record (23) comes after the cloud's
    ChangeCipherSpec (20) and the handshake record (22, its Finished) after it."""
    cloud_done = False
    ccs = False
    for who, kind in records:
        if who == "cloud" and kind == 20:
            ccs = True
        elif who == "cloud" and kind == 22 and ccs:
            cloud_done = True
        elif who == "board" and kind == 23 and not cloud_done:
            return False
    return True


def test_the_record_order_check_catches_a_cleartext_frame():
    hello, cleartext = ("board", 22), ("board", 23)
    assert not first_app_byte_after_handshake([hello, cleartext, ("cloud", 22), ("cloud", 20), ("cloud", 22)])
    assert first_app_byte_after_handshake([hello, ("cloud", 22), ("board", 22), ("board", 20), ("board", 22),
                                           ("cloud", 20), ("cloud", 22), cleartext])


@pytest.mark.parametrize("chip", CHIPS)
def test_no_application_byte_before_the_handshake_ends(make_board, cloud, chip):
    c = cloud[-1]
    proxy = RecordProxy(c.tls_port)
    try:
        board, device, owner = online_board(make_board, c, f"127.0.0.1:{proxy.port}", chip=chip)
        assert rpc(c, owner, "LED_OFF")[0] == 200
        records = proxy.sessions[-1]
        assert ("board", 23) in records  # identify and the reply went as application data
        assert first_app_byte_after_handshake(records), records
        no_trouble(board.log())
    finally:
        proxy.close()


# ---- a long session: RPCs and a cloud that dies and comes back


@pytest.mark.parametrize("chip", CHIPS)
def test_50_rpcs_then_20_cloud_restarts_at_38k(make_board, cloud, chip):
    c = cloud[-1]
    board, device, owner = online_board(make_board, c, chip=chip)
    for i in range(50):
        status, reply = rpc(c, owner, ("LED_ON", "LED_OFF")[i % 2])
        assert status == 200 and reply["status"] == 200, (i, status, reply)
    for i in range(20):
        old = cloud[-1]
        old.stop()
        board.expect(r"^cloud: closed by the server|^cloud: error")
        cloud.append(harness.start_in_thread(old.data_dir, tls_port=old.tls_port, api_port=old.api_port))
        board.expect(r"^cloud: identified", timeout=30)
        status, reply = rpc(cloud[-1], owner, "LED_OFF")
        assert status == 200 and reply["status"] == 200, (i, status, reply)
    log = board.log()
    no_trouble(log)
    assert log.count("cloud: activated") == 1 and log.count("cloud: identified") == 21


# ---- watchdogs


def test_a_slow_dns_lookup_does_not_reset_the_esp8266(make_board, cloud):
    # the lookup blocks 3.5 s (modlwip.c:1785-1800): a machine.WDT would bite at 1.6-3.2 s
    c = cloud[-1]
    board, _, owner = online_board(make_board, c, f"cloud.test:{c.tls_port}", hosts={"cloud.test": "127.0.0.1"},
                                   dns_delay_ms=3500)
    assert rpc(c, owner, "LED_OFF")[0] == 200
    assert board.control("state")["loop_gap"] >= 3500  # it did block the loop
    no_trouble(board.log())


@pytest.mark.parametrize("chip, bite", [
    ("esp8266", r"^watchdog: the event loop stopped; resetting"),  # the virtual-timer loop watchdog
    ("esp32", r"^board: task watchdog reset \(not fed"),  # machine.WDT, kept by the host
])
def test_a_stalled_event_loop_resets_the_board(make_board, tmp_path, chip, bite):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text(json.dumps({"watchdog": 3}))
    board = make_board(flash=flash, chip=chip)
    board.expect(r"^led: pairing")
    board.control("stall 8000")  # a firmware bug: Python that never yields
    board.expect(bite, timeout=10)
    board.expect(r"^mode: pair", timeout=10)  # it came back
    board.expect(r"^led: pairing")


# ---- the board reaches only 127.0.0.1, and names through its own table


def test_the_default_cloud_is_a_dns_miss_and_a_real_address_is_refused(make_board):
    board = make_board(device_key="a" * 40)
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], "93.184.216.34:8443", secrets.token_hex(20))
    board.expect(r"^board: refused 93\.184\.216\.34:8443 \(the virtual board reaches only 127\.0\.0\.1\)", timeout=20)
    board.expect(r"^cloud: error", timeout=20)
    board.press(hold=10.5)  # factory reset: the default server, iot.espressif.cn
    board.expect(r"^button: factory reset")
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"])
    board.expect(r"^cloud: connecting to iot\.espressif\.cn 8443", timeout=20)
    board.expect(r"^cloud: error OSError\(-2,\)", timeout=20)  # lwIP's DNS miss


# ---- the ESP32


def test_the_esp32_rejoins_after_a_wifi_drop(make_board, cloud):
    # while the AP is gone the driver retries on its own (status 201, then stale); the
    # firmware's connect() must not meet "Wifi Internal Error"
    c = cloud[-1]
    board, _, owner = online_board(make_board, c, chip="esp32")
    board.control("wifi-down 3000")
    board.expect(r"^wifi: lost", timeout=5)
    board.expect(r"^cloud: identified", timeout=30)
    assert rpc(c, owner, "LED_OFF")[0] == 200
    log = board.log()
    assert "Wifi Internal Error" not in log and "connect refused" not in log
    no_trouble(log)


class SntpServer:
    """An SNTP server on loopback answering with this host's clock."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                query, addr = self.sock.recvfrom(64)
            except OSError:
                return
            self.queries += 1
            now = int(time.time()) + 2208988800  # NTP counts from 1900
            reply = bytearray(48)
            reply[0] = 0x1C  # version 3, server
            reply[40:44] = now.to_bytes(4, "big")
            self.sock.sendto(bytes(reply), addr)

    def close(self):
        self.sock.close()


def test_the_esp32_sets_its_clock_before_verifying_a_real_ca(make_board, tmp_path):
    # a CA and server certificate issued in 2025, as a real CA's are: the ESP32's
    # clock starts at 2000-01-01, so verification fails until NTP has set it
    recent = datetime(2025, 1, 1, tzinfo=timezone.utc)
    certs.ensure(tmp_path / "cloud", not_before=recent)
    c = harness.start_in_thread(tmp_path / "cloud")
    sntp = SntpServer()
    try:
        device = store.Store(c.data_dir).create_device("clock")
        board = make_board(device_key=device["master_key"], ca=c.ca_file, chip="esp32",
                           hosts={"pool.ntp.org": "127.0.0.1"}, ntp_port=0)  # nothing answers: no clock
        board.expect(r"^led: pairing")
        pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{c.tls_port}", secrets.token_hex(20))
        board.expect(r"^clock: not set \(pool\.ntp\.org: .*\); certificates are checked as if it were 2000-01-01", 20)
        board.expect(r"^cloud: error", timeout=20)  # the certificate is "not yet valid"
        board.stop()

        board = make_board(flash=board.flash, device_key=device["master_key"], ca=c.ca_file, chip="esp32",
                           hosts={"pool.ntp.org": "127.0.0.1"}, ntp_port=sntp.port)
        board.expect(r"^clock: set from pool\.ntp\.org", timeout=20)
        board.expect(r"^cloud: identified", timeout=20)
        assert sntp.queries == 1
    finally:
        sntp.close()
        c.stop()


# ---- axTLS's memory


def test_axtls_out_of_heap_crashes_and_the_board_comes_back(make_board, cloud):
    # too small a heap for axTLS's ~12 KB: calloc's NULL is dereferenced, the chip reboots
    c = cloud[-1]
    device = store.Store(c.data_dir).create_device("small")
    board = make_board(device_key=device["master_key"], heap="24k")
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{c.tls_port}", secrets.token_hex(20))
    board.expect(r"^board: crash: axTLS out of heap", timeout=20)
    board.expect(r"^mode: join", timeout=10)  # booted again, settings kept
    assert board.settings()["ssid"] == "home"


@pytest.mark.parametrize("chip", CHIPS)
def test_a_record_larger_than_the_frame_buffer_is_read_to_its_end(make_board, cloud, chip):
    # axTLS decrypts a whole record but its poll() sees only the TCP socket: what is left
    # after a full 2 KB read must be read at once, not when the next packet comes
    c = cloud[-1]
    board, device, owner = online_board(make_board, c, chip=chip)
    frame = b'{"deliver_to_device": true, "get": {"action": "LED_OFF"}, "meta": {}, "method": "GET", "nonce": %d, "path": "/v1/device/rpc/"}\n'
    burst = b"".join(frame % (100 + i) for i in range(20))
    assert 2048 < len(burst) < 5115  # one record: more than the buffer, less than axTLS's limit
    c.send_raw(device["id"], burst)
    deadline = time.monotonic() + 3
    while board.log().count("cloud: /v1/device/rpc/ {'action': 'LED_OFF'} -> 200") < 20:
        assert time.monotonic() < deadline, board.log()
        time.sleep(0.05)
    no_trouble(board.log())
