"""A board nobody can reach with a cable, on the virtual board (38 KB heap): a damaged
settings.json never takes the identity or the device key and never stops the boot,
power cuts leave the settings old or new, and a crash loop ends in safe mode."""
import json
import random
import re
import sys
import time
from pathlib import Path

import pytest

from board_driver import HOME, http_exchange, kept_identity, split_responses
from esplink.cloud import harness, store
from esplink.phone import pair_ap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "soak"))
import power_cuts  # noqa: E402  (tests/soak/power_cuts.py: the same cuts, 200+ of them)

GET_DEVICE = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"
IDENTITY = ("deviceid", "apikey", "chipid")


@pytest.fixture
def cloud(tmp_path):
    c = harness.start_in_thread(tmp_path / "cloud")
    yield c
    c.stop()


def get_device(board):
    (status, _, body), = split_responses(http_exchange(board.http_port, [GET_DEVICE]))
    assert status == 200
    device = json.loads(body)
    return [device[k] for k in IDENTITY]


def copies(flash):
    return power_cuts.read_copies(flash)


def no_secrets(log, *secrets_):
    for s in secrets_:
        assert s not in log
    assert not re.search(r"Traceback|MemoryError|^error:", log, re.M), log


def nested(n):
    return '{"ssid": "home", "a": ' + "[" * n + "]" * n + "}"


DAMAGES = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\xff garbage \x00",
    "empty": lambda text: "",
    "60 KB": lambda text: '{"ssid": "home", "pad": "' + "x" * 60000 + '"}',  # valid JSON, refused by its size
    "6 KB nested": lambda text: nested(3000),
    "1.8 KB nested": lambda text: nested(880),  # under the size cap: refused by jsonobj's depth bound
}


def test_damaged_settings_keep_identity_and_device_key_and_the_board_boots(make_board, cloud):
    device = store.Store(cloud.data_dir).create_device("robust")
    key = device["master_key"]
    board = make_board(device_key=key, ca=cloud.ca_file)
    board.expect(r"^led: pairing")
    identity = get_device(board)
    kept = copies(board.flash)
    assert kept[0] == kept[1] == identity + [key]
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{cloud.tls_port}", "a" * 40)
    board.expect(r"^cloud: identified", timeout=20)
    settings = board.settings()
    assert "device_key" not in settings and settings["ssid"] == "home"

    # one byte changed in a name: that field is lost (and named), the rest stands
    text = (board.flash / "settings.json").read_text()
    (board.flash / "settings.json").write_text(text.replace('"ntp_server"', '"ntp_servar"'))
    board.control("reset")
    board.expect(r"^settings: lost ntp_server$")
    board.expect(r"^cloud: identified", timeout=20)  # same Wi-Fi, cloud, token and device key

    for name, damage in DAMAGES.items():
        (board.flash / "settings.json").write_text(damage(text))
        board.control("reset")
        size = len(damage(text).encode())
        board.expect(rf"^settings: settings\.json unreadable \({size} B\); its settings lost$")
        board.expect(r"^led: pairing")  # booted, unpaired: the Wi-Fi was in the lost settings
        assert get_device(board) == identity, name
        assert copies(board.flash) == kept, name
        assert [board.settings()[k] for k in IDENTITY] == identity, name

    # the next legitimate request works, with the device key the damage could not reach
    pair_ap(f"127.0.0.1:{board.http_port}", "home", HOME["home"], f"127.0.0.1:{cloud.tls_port}", "b" * 40)
    board.expect(r"^cloud: identified", timeout=20)
    no_secrets(board.log(), key, identity[1], HOME["home"], "a" * 40, "b" * 40)


def test_power_cuts_at_random_points_leave_identity_key_and_old_or_new_settings(tmp_path):
    seed = random.randrange(1 << 32)
    lines = []
    soak = power_cuts.Soak(tmp_path / "soak", rng=random.Random(seed), out=lines.append)
    try:
        failures = soak.run(20)
    finally:
        soak.stop()
    report = f"seed {seed} (tests/soak/power_cuts.py --seed {seed} --cuts 20 replays it):\n" + "\n".join(lines)
    assert failures == [], report + "\n" + "\n".join(failures) + "\n" + soak.board.log()
    assert soak.mid_write >= 3, report  # the cuts did land inside writes


# a firmware bug in the network world, there while the file `crash` is on the flash
CRASH_ONLINE = """\
import os
try:
    os.stat("crash")
    import online
    import vboard

    async def _online(s):
        vboard.crash("injected (the network world)")

    online._online = _online
except OSError:
    pass
"""


def crash_loop(board):
    for _ in range(3):
        board.expect(r"^mode: online")
        board.expect(r"^board: crash: injected")
    board.expect(r"^safe mode: 3 boots without reaching a stable state$")
    board.expect(r"^mode: pair$")
    board.expect(r"^led: safe$")


def test_a_crash_loop_ends_in_safe_mode_and_a_press_or_a_pairing_leaves_it(make_board, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "settings.json").write_text(json.dumps({"ssid": "home", "password": HOME["home"], "pair_window": 2}))
    (flash / "crash").write_text("")
    prelude = tmp_path / "crash_online.py"
    prelude.write_text(CRASH_ONLINE)
    key = "c0ffee" * 6 + "c0ff"
    board = make_board(flash=flash, prelude=prelude, device_key=key)
    crash_loop(board)
    kept = kept_identity(flash)
    assert kept[3] == key
    # the safe pattern (1000/200/200/600 ms), not pairing's 100/100; and no window back
    # to the network that crashed (pair_window is 2 s here)
    changes = board.control("state")["led_changes"]
    time.sleep(3)
    assert 4 <= board.control("state")["led_changes"] - changes <= 8
    assert "pairing: window closed" not in board.log()
    assert get_device(board)[0] == board.settings()["deviceid"]  # reachable

    board.press()  # leaves safe mode: a normal boot, and the count starts again
    board.expect(r"^button: short press")
    board.expect(r"^safe mode: left$")
    board.expect(r"^board: reset")
    board.expect(r"^mode: join$")
    crash_loop(board)

    (flash / "crash").unlink()  # fixed; a pairing leaves safe mode too
    pair_ap(f"127.0.0.1:{board.http_port}", "office", HOME["office"])
    board.expect(r"^wifi: connected")
    board.expect(r"^safe mode: left$")
    board.expect(r"^pairing: saved")
    board.expect(r"^board: reset")
    board.expect(r"^mode: join$")
    board.expect(r"^mode: online$")
    board.expect(r"^led: offline$")
    saved = board.settings()
    assert (saved["ssid"], saved["pair_window"]) == ("office", 2)  # safe mode's window never saved
    assert board.log().count("safe mode: 3 boots") == 2
    assert kept_identity(flash) == kept and [saved[k] for k in IDENTITY] == kept[:3]
    no_secrets(board.log(), HOME["home"], HOME["office"], key)
