"""Touch-mode pairing end to end: the firmware on the 32-bit MicroPython VM (38 KB heap)
hears an ESP-Touch broadcast on its loopback touch port, acks to the test's UDP port,
then pairs over HTTP. The receiver is a UDP socket while on a network; the ESP8266
model's keeps one pending datagram. Only 127.0.0.1."""
import socket
import threading
import time

from board_driver import HOME, esplink
from esplink import touch


def to_pairing(board):
    """Pair an unpaired board with "home" by AP mode, then press: back in AP pairing."""
    done = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "home",
                   "--password", HOME["home"])
    assert done.returncode == 0, done.stderr
    board.expect(r"^mode: online")
    board.press()
    board.expect(r"^mode: pair")
    board.expect(r"^led: pairing")


def pair_touch(board, ssid, password, *extra, timeout=20):
    return esplink("pair", "touch", "--ssid", ssid, "--password", password,
                   "--target", f"127.0.0.1:{board.touch_port}", "--phone-ip", "127.0.0.1",
                   "--ack-port", str(board.ack_port), "--device-port", str(board.http_port),
                   "--timeout", str(timeout), "--listen", "2", *extra, timeout=timeout + 15)


def board_mac(board):
    deviceid = board.settings()["deviceid"]  # "1000" + the MAC's last 3 bytes
    return deviceid[4:]


def test_touch_on_the_lan_re_pairs_with_the_cli(board):
    to_pairing(board)
    board.press()  # AP mode -> touch mode
    board.expect(r"^ap: down")
    board.expect(r"^wifi: connected")  # back on "home" to hear the phone's broadcast
    board.expect(r"^touch: listening on the LAN")
    board.expect(r"^led: touch")

    done = pair_touch(board, "office", HOME["office"], "--server", "127.0.0.1:8443", "--token", "b" * 40)
    assert done.returncode == 0, done.stdout + done.stderr
    ack_line = next(line for line in done.stdout.splitlines() if line.startswith("ack:"))
    assert ack_line.startswith("ack: device 127.0.0.1 mac ") and ack_line.replace(":", "").endswith(board_mac(board))
    assert f"deviceid={board.settings()['deviceid']}" in done.stdout

    board.expect(r"^touch: got office$")
    board.expect(r"^wifi: connected")
    board.expect(r"^pairing: saved")  # the touched network, before the ack
    board.expect(r"^touch: http on 127\.0\.0\.1")
    board.expect(r"^touch: acked 127\.0\.0\.1")
    board.expect(r"^pairing: saved")
    board.expect(r"^board: reset")
    board.expect(r"^mode: online")
    saved = board.settings()
    assert (saved["ssid"], saved["password"], saved["token"], saved["port"]) == (
        "office", HOME["office"], "b" * 40, 8443)
    assert HOME["office"] not in board.log() + done.stdout + done.stderr


def test_the_ack_bytes_thirty_times_despite_noise_on_one_datagram_udp(board):
    # the ESP8266 model's UDP socket keeps one pending datagram (modlwip.c:441)
    to_pairing(board)
    board.press()
    board.expect(r"^touch: listening on the LAN")
    heard = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ack_rx:
        ack_rx.bind(("127.0.0.1", board.ack_port))
        ack_rx.settimeout(20)
        to = ("127.0.0.1", board.touch_port)

        def send():
            for length in (1, 39, 300, 700, 1400, 296, 296, 41):  # noise in one burst, incl. lone sequence headers
                phone.sendto(b"1" * length, to)
            time.sleep(0.1)
            for _, length in touch.schedule("office", HOME["office"], "aa:bb:cc:dd:ee:ff", "127.0.0.1"):
                if heard.is_set():
                    return
                phone.sendto(b"1" * length, to)
                time.sleep(0.008)  # a phone's pace (esptouch.md: 8 ms)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        acks = []
        while len(acks) < 40:
            try:
                acks.append(ack_rx.recv(64))
            except socket.timeout:
                break
            heard.set()
            ack_rx.settimeout(1.0)  # the acks come 100 ms apart: a second of silence ends them
        heard.set()
        sender.join()
    total_len = 9 + len("office") + len(HOME["office"])
    mac = bytes.fromhex("18fe34" + board_mac(board))
    assert acks and acks[0] == bytes([total_len]) + mac + bytes([127, 0, 0, 1])
    assert acks == [acks[0]] * 30
    board.expect(r"^touch: got office$")
    board.expect(r"^touch: acked 127\.0\.0\.1")
    # no GET /device + POST /ap came: the touched network was saved all the same
    assert board.settings()["ssid"] == "office"
    assert board.control("state")["udp_dropped"] >= 5  # most of the burst: one datagram waits, the rest go


def test_touch_unavailable_without_a_network(board):
    board.press()
    board.expect(r"^touch: unavailable")
    board.expect(r"^led: failed")
    board.expect(r"^ap: up")
    board.expect(r"^led: pairing")
    assert "led: touch" not in board.log()


def test_a_press_in_touch_mode_returns_to_ap_mode(board):
    to_pairing(board)
    board.press()
    board.expect(r"^led: touch")
    board.press()
    board.expect(r"^touch: switched")
    board.expect(r"^ap: up")
    board.expect(r"^led: pairing")
    # and AP pairing still works
    done = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "office",
                   "--password", HOME["office"])
    assert done.returncode == 0, done.stderr
    board.expect(r"^mode: online")


def test_touched_wrong_password_back_to_ap_mode_nothing_saved(board):
    to_pairing(board)
    before = board.settings()
    board.press()
    board.expect(r"^touch: listening on the LAN")
    done = pair_touch(board, "office", "not-the-password", timeout=8)
    assert done.returncode != 0 and "no ack" in done.stderr
    assert "not-the-password" not in done.stdout + done.stderr
    board.expect(r"^touch: got office$")
    board.expect(r"^wifi: wrong password")
    board.expect(r"^ap: up")
    board.expect(r"^led: failed")
    assert board.settings() == before
    assert "not-the-password" not in board.log()


def test_a_sender_without_the_bssid_pairs_too(board):
    # older apps leave the BSSID out of the broadcast: the decoder takes both layouts
    to_pairing(board)
    board.press()
    board.expect(r"^touch: listening on the LAN")
    done = pair_touch(board, "office", HOME["office"], "--no-bssid")
    assert done.returncode == 0, done.stdout + done.stderr
    board.expect(r"^touch: got office$")
    board.expect(r"^pairing: saved")
    assert board.settings()["ssid"] == "office"
