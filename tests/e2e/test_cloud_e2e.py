"""The cloud link end to end: the virtual board (firmware .mpy files on the 32-bit VM,
38 KB heap) against the local cloud, over TLS on loopback with certificate checks."""
import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from board_driver import HOME, esplink
from esplink.cloud import certs, harness, store
from esplink.cloud.client import Client
from esplink.phone import pair_ap

LED_OFF = b'{"deliver_to_device": true, "get": {"action": "LED_OFF"}, "meta": {}, "method": "GET", "nonce": 11, "path": "/v1/device/rpc/"}'
LED_ON = b'{"deliver_to_device": true, "get": {"action": "LED_ON"}, "meta": {}, "method": "GET", "nonce": 12, "path": "/v1/device/rpc/"}'


@pytest.fixture
def cloud(tmp_path):
    running = [harness.start_in_thread(tmp_path / "cloud")]
    yield running  # a list: a test may restart it
    running[-1].stop()


class Online:
    """A board paired with the cloud, activated, identified and claimed."""

    def __init__(self, board, cloud, device, token):
        self.board, self.cloud, self.device = board, cloud, device
        self.client = Client("127.0.0.1", cloud.api_port, cloud.ca_file)
        self.owner = self.client.authorize(token)

    def rpc(self, action, **params):
        return self.client.rpc(self.owner, action, **params)


def pair_to_cloud(board, cloud, token):
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{cloud.tls_port}", token)


@pytest.fixture
def online(make_board, cloud):
    def make(**kw):
        c = cloud[-1]
        device = store.Store(c.data_dir).create_device("e2e")
        board = make_board(device_key=device["master_key"], ca=c.ca_file, **kw)
        token = secrets.token_hex(20)
        pair_to_cloud(board, c, token)
        board.expect(r"^cloud: activated", timeout=20)
        board.expect(r"^cloud: identified")
        return Online(board, c, device, token)

    return make


def test_pair_activate_identify_and_drive_the_led(online):
    o = online()
    b = o.board
    assert b.settings()["activated"] is True
    assert o.cloud.online(o.device["id"])
    b.expect(r"^led: on")  # online: the LED shows the plug, on at boot
    assert b.led_becomes(1)
    status, reply = o.rpc("LED_OFF")
    assert status == 200 and reply["status"] == 200
    b.expect(r"^led: off")
    assert b.led_becomes(0)
    status, reply = o.rpc("LED_ON")
    assert status == 200 and reply["status"] == 200 and set(reply) == {"deliver_to_device", "nonce", "status"}
    assert b.led_becomes(1)
    # the plug as a datastream: written and read through the device
    assert o.client.datapoint(o.owner, "plug-status", {"x": 0})[1]["datapoint"] == {"x": 0}
    assert b.led_becomes(0)
    status, reply = o.client.datapoint(o.owner, "plug-status")
    assert (status, reply["datapoint"]) == (200, {"x": 0})
    status, reply = o.client.datapoint(o.owner, "plug-status", {"x": 7})
    assert status == 400 and reply["nonce"] and "x must be 0 or 1" in reply["message"]
    log = b.log()
    assert o.device["master_key"] not in log and o.owner not in log and HOME["home"] not in log
    assert "error:" not in log


def test_unknown_action_gets_400_and_the_board_stays_up(online):
    o = online()
    status, reply = o.rpc("SELF_DESTRUCT", level="9")
    assert status == 400 and reply["message"] == "unknown action" and reply["deliver_to_device"] is True
    assert o.rpc("LED_OFF")[0] == 200


def test_garbage_a_frame_without_newline_and_two_frames_in_one_write(online):
    o = online()
    b, dev = o.board, o.device["id"]
    o.cloud.send_raw(dev, b"\x00\xffnot json at all {{{\n")
    o.cloud.send_raw(dev, b'{"half": \n')
    o.cloud.send_raw(dev, LED_OFF)  # a complete object and no newline, as the old C cloud sent
    b.expect(r"^cloud: /v1/device/rpc/ \{'action': 'LED_OFF'\} -> 200")
    assert b.led_becomes(0)
    o.cloud.send_raw(dev, LED_ON + b"\n" + LED_OFF + b"\n")  # two frames, one write
    b.expect(r"^cloud: /v1/device/rpc/ \{'action': 'LED_ON'\} -> 200")
    b.expect(r"^cloud: /v1/device/rpc/ \{'action': 'LED_OFF'\} -> 200")
    assert o.rpc("LED_ON")[0] == 200  # and the link still works for real RPCs
    assert b.led_becomes(1)
    assert "error:" not in b.log() and o.cloud.logins(dev) == 2  # activate + identify, no reconnect


def test_cloud_killed_and_restarted_mid_session(online, cloud):
    o = online()
    b, dev, old = o.board, o.device["id"], cloud[-1]
    old.stop()  # every socket dropped, like a killed process
    b.expect(r"^cloud: closed by the server|^cloud: read error")
    b.expect(r"^led: offline")
    time.sleep(1.5)  # a few refused reconnects while it is down
    cloud.append(harness.start_in_thread(old.data_dir, tls_port=old.tls_port, api_port=old.api_port))
    new = cloud[-1]
    b.expect(r"^cloud: identified", timeout=30)  # re-identifies on its own: no second activation
    assert "cloud: activated" not in b.log().split("cloud: closed by the server")[-1]
    assert new.logins(dev) == 1
    status, _ = Client("127.0.0.1", new.api_port, new.ca_file).rpc(o.owner, "LED_OFF")  # the store kept the owner key
    assert status == 200
    assert b.led_becomes(0)


def test_wrong_device_key_is_refused_with_backoff_and_no_crash(make_board, cloud):
    c = cloud[-1]
    board = make_board(device_key="0" * 40, ca=c.ca_file)
    pair_to_cloud(board, c, secrets.token_hex(20))
    times = []
    for _ in range(3):
        board.expect(r"^cloud: refused \(403\)", timeout=20)
        times.append(time.monotonic())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[1] >= gaps[0] * 0.9  # backoff: 0.5-1 s, then 1-2 s, then 2-4 s
    assert board.control("state")["led"] in (0, 1)  # still running
    assert "error:" not in board.log() and "identified" not in board.log()
    assert board.settings()["activated"] is False


def test_an_esp32_with_another_ca_will_not_talk_to_this_cloud(make_board, cloud, tmp_path):
    c = cloud[-1]
    device = store.Store(c.data_dir).create_device("stranger")
    other = certs.ensure(tmp_path / "other-ca")
    board = make_board(device_key=device["master_key"], ca=other.ca_der, chip="esp32")
    pair_to_cloud(board, c, secrets.token_hex(20))
    board.expect(r"^cloud: error", timeout=20)
    board.expect(r"^cloud: error", timeout=20)
    assert "activated" not in board.log() and not c.online(device["id"])


def test_an_esp8266_cannot_verify_and_says_so(make_board, cloud, tmp_path):
    # axTLS has no load_verify_locations: the link is encrypted, not authenticated
    c = cloud[-1]
    device = store.Store(c.data_dir).create_device("unverified")
    other = certs.ensure(tmp_path / "other-ca")
    board = make_board(device_key=device["master_key"], ca=other.ca_der)
    pair_to_cloud(board, c, secrets.token_hex(20))
    board.expect(r"^cloud: this port cannot verify the server; CA ignored", timeout=20)
    board.expect(r"^cloud: identified", timeout=20)


def test_sys_reboot_answers_then_comes_back_online(online):
    o = online()
    status, reply = o.rpc("sys_reboot")
    assert status == 200 and reply["status"] == 200
    o.board.expect(r"^board: reset", timeout=5)
    o.board.expect(r"^cloud: identified", timeout=20)
    assert o.rpc("LED_OFF")[0] == 200


def test_wifi_drop_rejoins_and_reidentifies(online):
    o = online()
    o.board.control("wifi-down 3000")
    o.board.expect(r"^wifi: lost", timeout=5)
    o.board.expect(r"^led: joining")
    o.board.expect(r"^cloud: identified", timeout=30)
    assert o.rpc("LED_OFF")[0] == 200


def test_plain_tcp_option(make_board, cloud):
    c = cloud[-1]
    device = store.Store(c.data_dir).create_device("plain")
    board = make_board(device_key=device["master_key"], plain=True)
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{c.plain_port}", secrets.token_hex(20))
    board.expect(r"^cloud: connecting to 127.0.0.1 \d+ plain", timeout=20)
    board.expect(r"^cloud: identified", timeout=20)


def test_esplink_cloud_cli_drives_the_board(online, cloud):
    o = online()
    data = str(cloud[-1].data_dir)
    # the CLI finds the running server through server.json; start_in_thread writes it too
    done = esplink("cloud", "rpc", "e2e", "LED_OFF", "--data", data)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == 200
    assert o.board.led_becomes(0)
    listing = esplink("cloud", "devices", "--data", data).stdout
    assert "e2e" in listing


def test_the_readme_demo_runs_start_to_finish_and_again_on_its_dir(tmp_path):
    for name in ("desk-lamp", "desk-lamp-2"):
        done = esplink("demo", "--dir", str(tmp_path), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert f"esplink cloud device create -> '{name}'" in out
        assert "activated with the token, identified" in out
        # what it says of TLS is what its ESP8266 did: no verification (the board logs it)
        assert "the ESP8266 cannot verify the server" in out and "CA ignored" in out
        assert "LED pin now lit" in out and "LED pin now dark" in out
        assert out.rstrip().endswith("demo: OK")


def processes_mentioning(text):
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass  # gone meanwhile
    return found


def test_sigterm_to_the_demo_stops_its_cloud_and_board(tmp_path):
    demo = subprocess.Popen([sys.executable, "-m", "esplink.cli", "demo", "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in demo.stdout:
            if "the board boots into AP pairing" in line:
                break
        assert (tmp_path / "cloud" / "server.json").exists()
        running = processes_mentioning(str(tmp_path))
        assert len(running) >= 3  # the demo, its cloud, its board
        for pid in running:  # the device key goes by environment, never argv (ps shows argv to all)
            assert b"--device-key" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(15) == 128 + signal.SIGTERM
    finally:
        if demo.poll() is None:
            demo.kill()
        demo.stdout.close()
    assert not (tmp_path / "cloud" / "server.json").exists()  # the cloud stopped cleanly
    deadline = time.monotonic() + 5
    while processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize("chip, error, within", [
    ("esp8266", r"OSError\(-256, 'CONN_LOST'\)", (4.5, 9)),  # the blocking handshake's read gives up at 5 s
    ("esp32", r"TimeoutError", (14.5, 20)),  # the first write (the handshake inside it) at 15 s
])
def test_a_server_that_accepts_but_never_speaks_tls_is_left_and_retried(make_board, chip, error, within):
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        board = make_board(device_key="a" * 40, chip=chip)
        board.expect(r"^led: pairing")
        pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"],
                f"127.0.0.1:{silent.getsockname()[1]}", secrets.token_hex(20))
        board.expect(r"^cloud: connecting", timeout=20)
        t0 = time.monotonic()
        board.expect(r"^cloud: error " + error, timeout=25)
        assert within[0] <= time.monotonic() - t0 <= within[1]
        board.expect(r"^cloud: connecting", timeout=5)  # and it tries again
