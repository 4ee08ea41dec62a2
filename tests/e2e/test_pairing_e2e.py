"""AP-mode pairing end to end: the firmware's .mpy files on the 32-bit MicroPython VM
with a 38 KB heap, driven over real loopback sockets."""
import json
import re
import time

import pytest

from board_driver import HOME, esplink, http_exchange, read_until_quiet, split_responses

GET_DEVICE = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\nConnection: Keep-Alive\r\n\r\n"


def post_ap(body, content_type):
    head = b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nConnection: Keep-Alive\r\n"
    if content_type:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# the three body styles pairing.md says real clients send
BODY_STYLES = {
    "seed": (b'{"port":443,"serverName":"54.223.98.144","password":"secret-home-pw","ssid":"home"}',
             b"application/x-www-form-urlencoded", "54.223.98.144", 443),
    "phone-app": (b'{"ssid":"home","password":"secret-home-pw","serverName":"192.168.2.1","port":80}',
                  b"application/json;charset=UTF-8", "192.168.2.1", 80),
    "community-tool": (b'{"version": 4, "ssid": "home", "password": "secret-home-pw", '
                       b'"serverName": "127.0.0.1", "port": 8443}', None, "127.0.0.1", 8443),
}


@pytest.mark.parametrize("style", sorted(BODY_STYLES))
def test_pairing_with_each_body_style_joins_and_survives_reboot(board, make_board, style):
    body, content_type, server, port = BODY_STYLES[style]
    replies = split_responses(http_exchange(board.http_port, [GET_DEVICE, post_ap(body, content_type)]))

    (s1, h1, device), (s2, h2, ok) = replies
    identity = json.loads(device)
    assert (s1, h1["Content-Type"], h1["Connection"]) == (200, "application/json", "keep-alive")
    assert int(h1["Content-Length"]) == len(device)
    assert list(identity) == ["deviceid", "apikey", "chipid", "accept"] and identity["accept"] == "post"
    assert (s2, ok, h2["Content-Length"]) == (200, b'{"error":0}', "11")

    board.expect(r"^ap: down")
    board.expect(r"^led: joining")
    board.expect(r"^wifi: connected")
    board.expect(r"^pairing: saved")
    board.expect(r"^board: reset")  # into the network world, without the pairing code
    board.expect(r"^mode: join")
    board.expect(r"^mode: online")
    board.expect(r"^led: offline")  # on Wi-Fi; no device key, so no cloud
    saved = board.settings()
    assert (saved["ssid"], saved["server"], saved["port"]) == ("home", server, port)
    assert saved["deviceid"] == identity["deviceid"] and saved["apikey"] == identity["apikey"]

    board.stop()
    again = make_board(flash=board.flash)
    again.expect(r"^mode: join")
    again.expect(r"^wifi: connected")
    again.expect(r"^mode: online")
    assert again.settings() == saved
    assert "secret-home-pw" not in board.log() + again.log()


def test_esplink_pair_ap_cli(board):
    """No --token: the phone makes one, as Espressif's app does, and shows it for the claim."""
    done = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "office",
                   "--server", "127.0.0.1:8443", env={"ESPLINK_WIFI_PASSWORD": "office-pw-123"})
    assert done.returncode == 0, done.stderr
    deviceid = board.settings()["deviceid"]
    assert f"deviceid={deviceid}" in done.stdout
    token = re.search(r"^token: ([0-9a-z]{40}) \(claim the device with: esplink cloud authorize \1\)$",
                      done.stdout, re.M)
    assert token, done.stdout
    board.expect(r"^mode: online")
    saved = board.settings()
    assert (saved["ssid"], saved["token"], saved["port"]) == ("office", token[1], 8443)
    # the Wi-Fi password is on the board's flash: its user's alone
    assert (board.flash.stat().st_mode & 0o777, (board.flash / "settings.json").stat().st_mode & 0o777) == (0o700, 0o600)
    assert "office-pw-123" not in done.stdout + done.stderr


def test_cli_reports_refusal_and_unreachable_device(board):
    bad = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "home", "--password", "short")
    assert bad.returncode != 0
    assert "bad password" in bad.stderr and "short" not in bad.stderr

    board.stop()
    gone = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "home",
                   "--password", "secret-home-pw", "--timeout", "2")
    assert gone.returncode != 0 and "cannot talk to device" in gone.stderr


def pair(board, ssid, password):
    done = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", ssid, "--password", password)
    assert done.returncode == 0, done.stderr


def test_wrong_password_returns_to_ap_mode_with_old_settings(board):
    pair(board, "home", HOME["home"])
    board.expect(r"^mode: online")
    before = board.settings()

    board.press()
    board.expect(r"^button: short press")
    board.expect(r"^mode: pair")
    board.expect(r"^led: pairing")
    pair(board, "home", "wrong-password")
    board.expect(r"^wifi: wrong password")
    board.expect(r"^ap: up")  # AP mode again, in the same boot
    board.expect(r"^led: failed")
    assert board.settings() == before

    # the AP is back: pairing again works
    pair(board, "office", HOME["office"])
    board.expect(r"^mode: online")
    assert board.settings()["ssid"] == "office"
    assert "wrong-password" not in board.log()


def test_unknown_network_from_unpaired_board_back_to_ap(board):
    pair(board, "nowhere", "whatever-pw")
    board.expect(r"^wifi: no AP")
    board.expect(r"^ap: up")  # AP mode again, in the same boot
    board.expect(r"^led: failed")
    assert board.settings()["ssid"] == ""


def test_long_press_is_factory_reset(board):
    pair(board, "home", HOME["home"])
    board.expect(r"^mode: online")
    identity = {k: board.settings()[k] for k in ("deviceid", "apikey", "chipid")}

    board.press(hold=10.5)
    board.expect(r"^button: factory reset")
    board.expect(r"^mode: pair")
    saved = board.settings()
    assert (saved["ssid"], saved["password"], saved["token"]) == ("", "", "")
    assert {k: saved[k] for k in identity} == identity
    assert "button: short press" not in board.log()


def test_bad_requests_get_error_json_and_the_board_keeps_serving(board):
    cases = [
        (b"garbage\r\n\r\n", 400, "close"),
        (b"GET /nope HTTP/1.1\r\n\r\n", 404, "keep-alive"),
        (b"DELETE /device HTTP/1.1\r\n\r\n", 405, "keep-alive"),
        (post_ap(b'{"ssid": "home", "password": ', None), 400, "keep-alive"),
        (post_ap(b"\xff\xfe", b"application/json"), 400, "keep-alive"),
        (b"POST /ap HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413, "close"),
        (b"GET /device HTTP/1.1\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n", 431, "close"),
    ]
    for raw, status, connection in cases:
        (got, headers, body), = split_responses(http_exchange(board.http_port, [raw]))
        reply = json.loads(body)
        assert (got, reply["error"], headers["Connection"]) == (status, status, connection), raw[:40]
        assert isinstance(reply["reason"], str)
    (status, _, body), = split_responses(http_exchange(board.http_port, [GET_DEVICE]))
    assert status == 200 and json.loads(body)["deviceid"] == board.settings()["deviceid"]
    assert "mode: pair" in board.log() and "Traceback" not in board.log()


def test_a_slow_client_gets_408(board):
    import socket

    with socket.create_connection(("127.0.0.1", board.http_port)) as slow:
        slow.sendall(b"GET /dev")  # a partial request, never finished
        slow.settimeout(15)
        (status, headers, body), = split_responses(slow.recv(4096))
        assert (status, json.loads(body)["error"], headers["Connection"]) == (408, 408, "close")


def test_when_full_the_least_recently_served_connection_makes_room(board):
    # five slots (pairing/server.py): a browser's connections or a slowloris hold them
    import socket

    held = [socket.create_connection(("127.0.0.1", board.http_port)) for _ in range(5)]
    try:
        for s in held[1:]:
            s.sendall(GET_DEVICE)  # served, and kept alive
            time.sleep(0.05)
        held[0].sendall(b"GET /dev")  # the oldest: a request that never ends, never served
        for s in held[1:]:
            read_until_quiet(s, 0.3)
        (status, _, _), = split_responses(http_exchange(board.http_port, [GET_DEVICE]))
        assert status == 200  # the newcomer is served ...
        held[0].settimeout(2)
        try:  # ... and the never-served one made room, without a reply (a reset: unread input)
            assert held[0].recv(4096) == b""
        except ConnectionResetError:
            pass
        held[4].sendall(GET_DEVICE)  # the most recently served one still works
        (status, _, _), = split_responses(read_until_quiet(held[4]))
        assert status == 200
    finally:
        for s in held:
            s.close()


def test_esp32_status_codes_and_wiring(make_board):
    board = make_board(chip="esp32")
    board.expect(r"^led: pairing")
    pair(board, "home", "wrong-password")
    board.expect(r"^wifi: wrong password")
    pair(board, "home", HOME["home"])
    board.expect(r"^mode: online")
    assert board.led_becomes(1)
    assert len(board.settings()["chipid"]) == 12  # 6-byte unique_id on the ESP32


def led_changes_in(board, seconds):
    before = board.control("state")["led_changes"]
    time.sleep(seconds)
    return board.control("state")["led_changes"] - before


def test_led_pin_really_blinks_fast_while_pairing_and_slowly_without_a_cloud(board):
    assert led_changes_in(board, 1.0) >= 8  # 100 ms on / 100 ms off
    pair(board, "home", HOME["home"])
    board.expect(r"^led: offline")
    assert 2 <= led_changes_in(board, 2.1) <= 4  # a 100 ms flash every 2 s


def test_pairing_window_closes_back_to_the_saved_network(make_board, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text(json.dumps(
        {"ssid": "home", "password": HOME["home"], "pair_window": 2}))
    board = make_board(flash=flash)
    board.expect(r"^mode: online")
    board.press()
    board.expect(r"^board: reset")
    board.expect(r"^mode: pair")
    board.expect(r"^ap: down", timeout=5)
    board.expect(r"^pairing: window closed")
    board.expect(r"^board: reset")
    board.expect(r"^mode: join")
    board.expect(r"^mode: online")
    assert board.settings()["ssid"] == "home"


def test_reset_reboots_with_flash_intact(board):
    pair(board, "home", HOME["home"])
    board.expect(r"^mode: online")
    saved = board.settings()
    board.control("reset")
    board.expect(r"^board: reset")
    board.expect(r"^mode: join")
    board.expect(r"^mode: online")
    assert board.settings() == saved


def test_repeated_pairing_fits_the_heap(board):
    # each round crosses from the network world to pairing and back by reset:
    # nothing may pile up across rounds (RTC request, settings, the flash)
    for round in range(5):
        ssid = ("home", "office")[round % 2]
        pair(board, ssid, HOME[ssid])
        board.expect(r"^mode: online")
        board.press()
        board.expect(r"^led: pairing")
    assert "error:" not in board.log() and "out of memory" not in board.log()


EMOJI_SSID = "\U0001f3e0" * 8  # 32 bytes of UTF-8, the most a network name holds


@pytest.mark.parametrize("how", ["esplink pair ap (raw UTF-8)", "escaped (surrogate pairs)"])
def test_a_name_outside_the_bmp_is_saved_as_the_router_spells_it(make_board, how):
    board = make_board(wifi={**HOME, EMOJI_SSID: "emoji-pw-123", "Café🏠": "cafe-pw-123"})
    board.expect(r"^led: pairing")
    if how.startswith("esplink"):
        done = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", EMOJI_SSID,
                       env={"ESPLINK_WIFI_PASSWORD": "emoji-pw-123"})
        assert done.returncode == 0, done.stderr
        ssid = EMOJI_SSID
    else:
        ssid = "Café🏠"
        body = json.dumps({"ssid": ssid, "password": "cafe-pw-123"}).encode()  # \u00e9\ud83c\udfe0
        assert b"\\ud83c\\udfe0" in body
        (status, _, ok), = split_responses(http_exchange(board.http_port, [post_ap(body, b"application/json")]))
        assert (status, ok) == (200, b'{"error":0}')
    board.expect(r"^wifi: connected")  # the virtual router compares the name's bytes
    board.expect(r"^pairing: saved")
    raw = (board.flash / "settings.json").read_bytes()
    assert ssid.encode() in raw and b"\xed\xa0" not in raw  # UTF-8, not CESU-8
    assert board.settings()["ssid"] == ssid
