"""A hostile or broken cloud against the virtual board (ESP8266 model: firmware .mpy
files on the 32-bit VM, 38 KB heap, axTLS's memory on it), over TLS on loopback.

Frames the board cannot take (nested too deep, over 2 KB, invalid UTF-8, an action
that is not a string) are answered with their nonce, the board neither resets nor
reconnects, and the next RPC works. A cloud that stops answering and trickles junk
is declared dead on the session's clock.

One board for the module: pairing it is most of the time. Its session pings after
PING_MS of silence instead of 50 s (a prelude subclasses espcloud.session.Session
before boot), so a dead link shows in seconds."""
import re
import secrets
import threading
import time

import pytest

from board_driver import HOME, Board, kept_identity
from esplink.cloud import harness, protocol, store
from esplink.cloud.client import Client
from esplink.phone import pair_ap

PING_MS = 3000

PRELUDE = f"""
from espcloud import session

class _FastPing(session.Session):
    def __init__(self, *args):
        super().__init__(*args, ping_ms={PING_MS})

session.Session = _FastPing
"""


def delivery(get, nonce):
    """A delivery in the cloud's style (json.dumps, sorted keys: "nonce" after "get")."""
    return (b'{"deliver_to_device": true, "get": ' + get + b', "meta": {"Authorization": "token x"}, '
            b'"method": "GET", "nonce": ' + str(nonce).encode() + b', "path": "/v1/device/rpc/"}\n')


def answer(status, nonce, message):
    return ('{"status": %d, "nonce": %d, "deliver_to_device": true, "message": "%s"}'
            % (status, nonce, message)).encode()


class Online:
    """The board, paired, activated, identified and claimed; every line it sends is
    recorded at the cloud (`heard`)."""

    def __init__(self, tmp):
        self.cloud = harness.start_in_thread(tmp / "cloud")
        self.heard = []
        self.deaf = threading.Event()  # the cloud ignores pings while set
        frame, request = self.cloud.cloud._frame, self.cloud.cloud._request

        async def recording(conn, line, oversize):
            self.heard.append(line)
            await frame(conn, line, oversize)

        def deaf_to_pings(conn, msg):
            if self.deaf.is_set() and msg.get("path") == protocol.PING:
                return None
            return request(conn, msg)

        self.cloud.cloud._frame, self.cloud.cloud._request = recording, deaf_to_pings
        device = store.Store(self.cloud.data_dir).create_device("hostile")
        self.dev = device["id"]
        prelude = tmp / "fast_ping.py"
        prelude.write_text(PRELUDE)
        self.board = Board(tmp / "flash", HOME, device_key=device["master_key"], ca=self.cloud.ca_file,
                           prelude=prelude).start()
        token = secrets.token_hex(20)
        self.board.expect(r"^led: pairing", timeout=20)
        pair_ap(f"127.0.0.1:{self.board.http_port}", "home", HOME["home"], f"127.0.0.1:{self.cloud.tls_port}", token)
        self.board.expect(r"^cloud: identified", timeout=30)
        self.client = Client("127.0.0.1", self.cloud.api_port, self.cloud.ca_file)
        self.owner = self.client.authorize(token)
        self.identity = self.who()
        self.online_from = len(self.board.log().splitlines())  # pairing resets once: not counted

    def who(self):
        # settings.json mirrors the identity but never holds the device key: that is in
        # the identity copies
        s = self.board.settings()
        return kept_identity(self.board.flash), [s[k] for k in ("deviceid", "apikey", "chipid", "activated")]

    def rpc(self, action):
        return self.client.rpc(self.owner, action)

    def hears(self, line, timeout=5.0):
        deadline = time.monotonic() + timeout
        while line not in self.heard:
            assert time.monotonic() < deadline, f"the cloud never heard {line!r}; it heard {self.heard[-5:]!r}"
            time.sleep(0.02)

    def carries_on(self, logins):
        """No reset, no reconnect, the same identity, and real RPCs work."""
        for action, lit in (("LED_OFF", 0), ("LED_ON", 1)):
            status, reply = self.rpc(action)
            assert status == 200 and reply["status"] == 200, (action, status, reply)
            assert self.board.led_becomes(lit)
        lines = self.board.log().splitlines()[self.online_from:]
        bad = [ln for ln in lines if re.search(r"^board: reset|^error:|Traceback|^watchdog|^mode: pair", ln)]
        assert not bad, bad
        assert self.cloud.logins(self.dev) == logins and self.who() == self.identity

    def stop(self):
        self.board.stop()
        print(f"--- board:\n{self.board.log()}")  # shown by pytest when a test fails
        self.cloud.stop()


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    o = Online(tmp_path_factory.mktemp("hostile"))
    yield o
    o.stop()


CANNOT_TAKE = {
    # 550 nested lists in 1.2 KB: json.loads ran out of heap and the board reset
    "deep": (delivery(b'{"action": "LED_OFF", "x": ' + b"[" * 550 + b"]" * 550 + b"}", 5501),
             answer(400, 5501, "bad frame")),
    # over the 2 KB frame buffer, its nonce first: dropped, and the caller waited 10 s
    "3 KB": (b'{"nonce": 3072, "deliver_to_device": true, "path": "/v1/device/rpc/", "get": {"action": "LED_OFF", '
             b'"pad": "' + b"p" * 3000 + b'"}}\n', answer(413, 3072, "frame over 2 KB")),
    "invalid UTF-8": (delivery(b'{"action": "LED_OFF\xff\xfe"}', 8008), answer(400, 8008, "bad frame")),
    "list action": (delivery(b'{"action": [1]}', 1001), answer(400, 1001, "unknown action")),
    "dict action": (delivery(b'{"action": {"LED_OFF": 1}}', 1002), answer(400, 1002, "unknown action")),
}


@pytest.mark.parametrize("case", list(CANNOT_TAKE))
def test_a_frame_the_board_cannot_take_is_answered_and_it_carries_on(online, case):
    frame, want = CANNOT_TAKE[case]
    logins = online.cloud.logins(online.dev)
    online.cloud.send_raw(online.dev, frame)
    online.hears(want)
    assert online.board.control("state")["led"] == 1  # the LED_OFF inside was not run
    online.carries_on(logins)


def test_a_frame_inside_the_bounds_that_the_heap_cannot_hold(online):
    # 240 short strings (1.8 KB, inside jsonobj's bounds) take ~9 KB as objects: more than
    # the ESP8266 model has free online. The MemoryError drops only this frame; should
    # the heap one day hold it, the delivery simply runs
    logins = online.cloud.logins(online.dev)
    items = b", ".join(b'"%03d"' % i for i in range(240))
    online.cloud.send_raw(online.dev, delivery(b'{"action": "LED_OFF", "x": [' + items + b"]}", 2400))
    deadline = time.monotonic() + 5
    while not {answer(503, 2400, "out of memory"), b'{"status": 200, "nonce": 2400, "deliver_to_device": true}'} & set(
            online.heard):
        assert time.monotonic() < deadline, online.heard[-3:]
        time.sleep(0.02)
    online.carries_on(logins)


def test_the_log_names_the_action_but_no_other_parameter(online):
    logins = online.cloud.logins(online.dev)
    status, _ = online.client.rpc(online.owner, "LED_OFF", password="hunter2-secret")
    assert status == 200
    online.board.expect(r"^cloud: /v1/device/rpc/ \{'action': 'LED_OFF'\} -> 200")
    assert "hunter2-secret" not in online.board.log()
    online.carries_on(logins)


def test_a_deep_datapoint_over_rest_gets_its_400_at_once(online):
    # the one REST call: whichever side refuses it, the caller hears at once
    logins = online.cloud.logins(online.dev)
    deep = [0]
    for _ in range(550):
        deep = [deep]
    t0 = time.monotonic()
    status, reply = online.client.datapoint(online.owner, "plug-status", {"x": deep})
    assert status == 400 and time.monotonic() - t0 < 3, (status, reply)
    online.carries_on(logins)


def test_a_junk_trickle_does_not_keep_a_dead_link_alive(online):
    # the cloud stops answering pings and sends one junk byte every 0.5 s: before, the
    # session's clock ran only when a read timed out, and this kept the link up for good
    b, logins = online.board, online.cloud.logins(online.dev)
    stop = threading.Event()

    def trickle():
        junk = b'x\xff{"half": \n'  # garbage, and an object its line cuts short
        i = 0
        while not stop.wait(0.5):
            try:
                online.cloud.send_raw(online.dev, junk[i % len(junk):][:1])
            except Exception:  # the board hung up: the link is gone
                return
            i += 1

    online.deaf.set()
    thread = threading.Thread(target=trickle, daemon=True)
    t0 = time.monotonic()
    thread.start()
    try:
        b.expect(r"^cloud: no answer to ping", timeout=2 * PING_MS / 1000 + 5)
        took = time.monotonic() - t0
    finally:
        stop.set()
        online.deaf.clear()
        thread.join(5)
    # the last frame (a ping's answer, or identify's) came at most PING_MS before t0
    assert PING_MS / 1000 - 0.5 <= took <= 2 * PING_MS / 1000 + 1.5, took
    b.expect(r"^cloud: identified", timeout=15)
    online.carries_on(logins + 1)  # one reconnect, no activation, no reset
