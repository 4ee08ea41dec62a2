"""The phone's side of ESP-Touch v1 (esplink.touch): the encoder by esptouch.md, the ack,
and `esplink pair touch` against a fake device on loopback."""
import functools
import http.server
import itertools
import json
import operator
import socket
import threading
import time

import pytest

from esplink import CommandError, cli
from esplink.touch import (GUIDE, crc8, data_code, data_lengths, encode, parse_ack, schedule,
                           send_order)

# esptouch.md's worked example
SSID, PASSWORD, PHONE = "TP-LINK_1234", "12345678", "192.168.1.100"
ACK = bytes.fromhex("1d5ccf7fa6fdf6c0a8014d")
IDENTITY = {"deviceid": "1000a6fdf6", "apikey": "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea",
            "chipid": "0a1b2c3d", "accept": "post"}


def test_crc8_check_values():
    assert crc8(b"123456789") == 0xA1
    assert crc8(b"TP-LINK_1234") == 0x1E
    assert crc8(b"") == 0


def test_worked_example_layout():
    bssid = "a0:b1:c2:d3:e4:f5"
    data = encode(SSID, PASSWORD, bssid, PHONE)
    assert data[0] == 0x1D == 9 + 8 + 12 and len(data) == 0x1D + 6
    assert data[1] == 8
    assert data[2] == 0x1E
    assert data[3] == crc8(bytes.fromhex("a0b1c2d3e4f5"))
    assert functools.reduce(operator.xor, data[:0x1D]) == 0
    assert data[5:9] == bytes([192, 168, 1, 100])
    assert data[9:17] == b"12345678"
    assert data[17:29] == b"TP-LINK_1234"
    assert data[29:] == bytes.fromhex("a0b1c2d3e4f5")
    # no bssid: unknown, all zeros
    assert encode(SSID, PASSWORD, None, PHONE)[29:] == bytes(6)


def test_open_network_and_utf8():
    data = encode("café", "", None, "10.0.0.2")
    assert data[0] == 9 + 5 and data[1] == 0 and data[9:14] == "café".encode()
    assert functools.reduce(operator.xor, data[:14]) == 0


def test_parse_ack_worked_example_and_rejects():
    total_len = encode(SSID, PASSWORD, None, PHONE)[0]
    ack = parse_ack(ACK, total_len)
    assert ack == ("192.168.1.77", "5c:cf:7f:a6:fd:f6")
    assert (ack.ip, ack.mac) == ("192.168.1.77", "5c:cf:7f:a6:fd:f6")
    assert parse_ack(ACK[:10], total_len) is None
    assert parse_ack(ACK + b"\0", total_len) is None
    assert parse_ack(b"\x1e" + ACK[1:], total_len) is None
    assert parse_ack(b"", total_len) is None


def test_data_code_lengths():
    # crc8([0x1d, 0]) == 0x65; crc8([0x54, 17]) == 0x8f
    assert crc8(bytes((0x1D, 0))) == 0x65
    assert data_code(0x1D, 0) == (40 + 0x61, 296, 40 + 0x5D) == (137, 296, 133)
    assert data_code(ord("T"), 17) == (40 + 0x85, 313, 40 + 0xF4) == (173, 313, 284)
    for v, i in itertools.product((0, 0x7F, 0xFF), (0, 127)):
        high, seq, low = data_code(v, i)
        assert 40 <= high <= 295 and seq == 296 + i and 40 <= low <= 295


def test_send_order_interleaves_the_bssid():
    order = send_order(0x1D)
    assert order[:5] == [0, 1, 2, 3, 4]
    assert [order.index(0x1D + k) for k in range(6)] == [5, 9, 13, 17, 21, 25]
    assert order[6:9] == [5, 6, 7] and order[10:13] == [8, 9, 10]
    assert sorted(order) == list(range(0x1D + 6))
    # the shortest message (1-byte ssid, open): the bssid codes left over go last
    assert send_order(10) == [0, 1, 2, 3, 4, 10, 5, 6, 7, 11, 8, 9, 12, 13, 14, 15]


def test_data_lengths_follow_the_send_order():
    data = encode(SSID, PASSWORD, None, PHONE)
    lengths = data_lengths(SSID, PASSWORD, None, PHONE)
    assert len(lengths) == 3 * len(data)
    assert lengths[:15] == [n for i in range(5) for n in data_code(data[i], i)]
    assert lengths[15:18] == list(data_code(0, 0x1D))  # bssid[0] before ip[0]
    assert lengths[18:21] == list(data_code(192, 5))


def test_schedule_timing():
    data = data_lengths(SSID, PASSWORD, None, PHONE)
    first = list(itertools.islice(schedule(SSID, PASSWORD, None, PHONE), 2000))
    assert [t for t, _ in first] == [8 * k for k in range(2000)]
    lengths = [n for _, n in first]
    guide_count, data_count = 2000 // 8, 4000 // 8  # a 6 s cycle of 750 datagrams
    assert lengths[:guide_count] == [GUIDE[k % 4] for k in range(guide_count)]
    assert lengths[guide_count:750] == [data[k % len(data)] for k in range(data_count)]
    assert lengths[750:1000] == lengths[:250]
    # the data round resumes where the previous cycle left it
    assert lengths[1000:1500] == [data[k % len(data)] for k in range(data_count, 2 * data_count)]
    assert first[750][0] == 6000

    small = list(itertools.islice(schedule(SSID, PASSWORD, None, PHONE, interval_ms=10, guide_ms=100,
                                           data_ms=200), 40))
    assert [n for _, n in small[:10]] == [515, 514, 513, 512, 515, 514, 513, 512, 515, 514]
    assert [n for _, n in small[10:30]] == data[:20]
    assert [n for _, n in small[30:34]] == list(GUIDE) and small[30][0] == 300


@pytest.mark.parametrize("ssid, password, bssid, phone_ip, message", [
    ("", "12345678", None, PHONE, "ssid"),
    ("x" * 33, "12345678", None, PHONE, "ssid"),
    ("é" * 17, "12345678", None, PHONE, "ssid"),  # 34 bytes of UTF-8
    ("home", "p" * 65, None, PHONE, "password"),
    ("home", "12345678", "aa:bb:cc:dd:ee", PHONE, "bssid"),
    ("home", "12345678", "aa:bb:cc:dd:ee:zz", PHONE, "bssid"),
    ("home", "12345678", "aa-bb-cc-dd-ee-ff", PHONE, "bssid"),
    ("home", "12345678", None, "192.168.1", "phone ip"),
    ("home", "12345678", None, "::1", "phone ip"),
])
def test_input_validation(ssid, password, bssid, phone_ip, message):
    with pytest.raises(CommandError, match=message):
        schedule(ssid, password, bssid, phone_ip)  # at the call, before any next()


def test_largest_input_is_accepted():
    data = encode("x" * 32, "p" * 64, "AA:BB:CC:DD:EE:FF", PHONE)
    assert data[0] == 105 and data[-6:] == bytes.fromhex("aabbccddeeff")
    assert max(send_order(data[0])) == 110  # the index limit is 127


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeDevice:
    """A device already on the LAN: hears the touch datagrams on UDP, sends `acks` to the
    phone once it has heard 3, and serves GET /device and POST /ap over HTTP."""

    def __init__(self, ack_port, acks=()):
        self.ack_port, self.acks = ack_port, acks
        self.datagrams, self.posted = [], []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.05)
        self.udp_port = self.udp.getsockname()[1]
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.http.daemon_threads = True
        self.http_port = self.http.server_address[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._hear, daemon=True),
                        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True)]
        for thread in self.threads:
            thread.start()

    def _hear(self):
        while not self.stopping.is_set():
            try:
                self.datagrams.append(self.udp.recv(1024))
            except socket.timeout:
                continue
            if len(self.datagrams) == 3:
                for ack in self.acks:
                    self.udp.sendto(ack, ("127.0.0.1", self.ack_port))

    def _handler(self):
        device = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as pair_ap asks

            def do_GET(self):
                self._reply(IDENTITY if self.path == "/device" else {"error": 404})

            def do_POST(self):
                device.posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self._reply({"error": 0})

            def _reply(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.stopping.set()
        self.http.shutdown()
        self.http.server_close()
        for thread in self.threads:
            thread.join(2)
        self.udp.close()


def touch_cli(device, *extra, password="secret-home-pw"):
    return cli.main(["pair", "touch", "--ssid", "home", "--password", password,
                     "--target", f"127.0.0.1:{device.udp_port}", "--phone-ip", "127.0.0.1",
                     "--ack-port", str(device.ack_port), "--device-port", str(device.http_port),
                     *map(str, extra)])


def test_pair_touch_against_a_fake_device(capsys):
    ack_port = free_port(socket.SOCK_DGRAM)
    total_len = encode("home", "secret-home-pw", None, "127.0.0.1")[0]
    mac = bytes.fromhex("5ccf7fa6fdf6")
    acks = [bytes([total_len]) + mac + bytes([127, 0, 0]),  # 10 bytes
            bytes([total_len + 1]) + mac + bytes([127, 0, 0, 1]),  # another message's
            bytes([total_len]) + mac + bytes([127, 0, 0, 1])]
    device = FakeDevice(ack_port, acks)
    try:
        start = time.monotonic()
        status = touch_cli(device, "--server", "cloud.example:8443", "--token", "a" * 40,
                           "--timeout", 5, "--listen", 1)
        elapsed = time.monotonic() - start
    finally:
        device.close()
    out, err = capsys.readouterr()
    assert status == 0, err
    assert elapsed < 2
    assert device.posted == [{"ssid": "home", "password": "secret-home-pw", "serverName": "cloud.example",
                              "port": 8443, "token": "a" * 40}]
    assert [len(d) for d in device.datagrams[:3]] == [515, 514, 513]
    assert all(set(d) == {ord("1")} for d in device.datagrams)
    assert out.splitlines() == [
        f"touch: sending 'home' to 127.0.0.1:{device.udp_port} for 5 s, ack expected on 127.0.0.1:{ack_port}",
        "ack: device 127.0.0.1 mac 5c:cf:7f:a6:fd:f6",
        f"device: deviceid={IDENTITY['deviceid']} chipid={IDENTITY['chipid']} apikey={IDENTITY['apikey']}",
        "paired: the device is joining 'home'",
    ]
    assert "secret-home-pw" not in out + err


def test_no_ack_times_out(capsys):
    device = FakeDevice(free_port(socket.SOCK_DGRAM), acks=[b"\x17" + bytes(10)])  # wrong total_len
    try:
        start = time.monotonic()
        status = touch_cli(device, "--timeout", 0.5, "--listen", 0.3)
        elapsed = time.monotonic() - start
        time.sleep(0.1)  # the last datagrams reach the device
    finally:
        device.close()
    out, err = capsys.readouterr()
    assert status == 1
    assert err.startswith("esplink: no ack from a device within 0.8 s") and "2.4 GHz" in err
    assert "secret-home-pw" not in out + err
    assert 0.8 <= elapsed < 2
    # one datagram every 8 ms while t < 500 ms, paced in real time
    assert len(device.datagrams) == 63
    assert device.posted == []
