# settings.py: defaults, the atomic save, recovery from interrupted saves, pairing.
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py); every test
# that touches files runs in a fresh directory.
import json
import os

import settings
from check import exists, fresh_dir, raises, read, write

IDENTITY = ("deviceid", "apikey", "chipid", "device_key")
HEX = "0123456789abcdef"


def saved(**values):
    s = settings.defaults()
    s.update(values)
    return json.dumps(s)


class _PowerCutBeforeRename:
    # stands in for settings.os: the temp file gets written, the rename never happens
    def rename(self, old, new):
        raise OSError(5)

    def remove(self, path):
        os.remove(path)


def test_defaults_per_platform():
    assert settings.defaults("esp8266")["led_active_low"] is True
    assert settings.defaults("esp32")["led_active_low"] is False
    d = settings.defaults()
    assert (d["server"], d["port"], d["ssid"], d["activated"]) == ("iot.espressif.cn", 8443, "", False)
    with fresh_dir():
        assert settings.load("esp32") == settings.defaults("esp32")
        assert settings.load("esp8266") == settings.defaults("esp8266")
        assert os.listdir() == []  # loading writes nothing


def test_save_load_round_trip():
    with fresh_dir():
        s = settings.load()
        s.update(ssid="caf\u00e9", password="p\"w\\d", port=443, activated=True, token="t" * 40)
        settings.save(s)
        assert os.listdir() == ["settings.json"]
        assert settings.load() == s


def test_power_cut_before_rename_keeps_old_settings():
    with fresh_dir():
        old = settings.load()
        old["ssid"] = "old"
        settings.save(old)
        new = dict(old, ssid="new")
        settings.os = _PowerCutBeforeRename()
        try:
            raises(OSError, settings.save, new)
        finally:
            settings.os = os
        assert sorted(os.listdir()) == ["settings.json", "settings.json.tmp"]
        assert settings.load()["ssid"] == "old"
        assert os.listdir() == ["settings.json"]  # the stale temp file is gone


def test_partial_temp_file_beside_settings_is_discarded():
    with fresh_dir():
        write("settings.json", saved(ssid="old"))
        write("settings.json.tmp", saved(ssid="new")[:40])
        assert settings.load()["ssid"] == "old"
        assert not exists("settings.json.tmp")
        assert json.loads(read("settings.json"))["ssid"] == "old"


def test_interrupted_rename_on_fat_is_recovered():
    # FAT renames by deleting the target first: the new copy is complete in the temp file
    with fresh_dir():
        write("settings.json.tmp", saved(ssid="new", port=443))
        s = settings.load()
        assert (s["ssid"], s["port"]) == ("new", 443)
        assert os.listdir() == ["settings.json"]
        assert json.loads(read("settings.json"))["ssid"] == "new"


def test_interrupted_first_save_gives_defaults():
    with fresh_dir():
        write("settings.json.tmp", saved(ssid="new")[:40])
        assert settings.load() == settings.defaults()


def test_truncated_settings_give_defaults():
    text = saved(ssid="home", password="12345678")
    # MicroPython's json.loads accepts some of these cuts: the guard must not
    for cut in (text[: text.index('"password"')], text[: text.index('"password"') - 2], text[:1], text[:-1]):
        with fresh_dir():
            write("settings.json", cut)
            assert settings.load() == settings.defaults(), cut
    with fresh_dir():
        write("settings.json", "\x00\x00garbage")
        assert settings.load() == settings.defaults()


def test_wrong_typed_values_fall_back_unknown_keys_dropped():
    with fresh_dir():
        write("settings.json", json.dumps({"ssid": "home", "port": "x", "activated": "yes",
                                           "led_active_low": 1, "bogus": 1}))
        s = settings.load("esp32")
        want = settings.defaults("esp32")
        want["ssid"] = "home"
        assert s == want


def test_forget_keeps_identity():
    s = settings.defaults()
    s.update(deviceid="100000788a", apikey="k", chipid="0a1b2c3d", device_key="dk", ssid="home",
             password="12345678", server="example.com", port=443, token="t" * 40, activated=True,
             led_pin=5)
    settings.forget(s)
    d = settings.defaults()
    assert [s[k] for k in IDENTITY] == ["100000788a", "k", "0a1b2c3d", "dk"]
    for key in ("ssid", "password", "server", "port", "token", "activated"):
        assert s[key] == d[key], key
    assert s["led_pin"] == 5


def _paired(token="a" * 40):
    s = settings.defaults()
    s.update(ssid="old", password="oldpassw", server="example.com", port=443, token=token, activated=True)
    return s


def test_apply_pairing_new_token_clears_activated():
    s = _paired()
    settings.apply_pairing(s, {"ssid": "new", "password": "newpassw", "token": "b" * 40})
    assert (s["ssid"], s["password"], s["token"], s["activated"]) == ("new", "newpassw", "b" * 40, False)


def test_apply_pairing_same_or_no_token_keeps_activated():
    s = _paired()
    settings.apply_pairing(s, {"ssid": "new", "password": "newpassw", "token": "a" * 40})
    assert s["activated"] is True
    settings.apply_pairing(s, {"ssid": "newer", "password": ""})
    assert (s["ssid"], s["password"], s["token"], s["activated"]) == ("newer", "", "a" * 40, True)


def test_apply_pairing_server_and_port():
    s = _paired()
    settings.apply_pairing(s, {"ssid": "new", "password": ""})
    assert (s["server"], s["port"]) == ("example.com", 443)
    settings.apply_pairing(s, {"ssid": "new", "password": "", "server": "10.0.0.1", "port": 8080})
    assert (s["server"], s["port"]) == ("10.0.0.1", 8080)


def _uuid4_ok(text):
    parts = text.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    for c in "".join(parts):
        if c not in HEX:
            return False
    return parts[2][0] == "4" and parts[3][0] in "89ab"


def test_make_identity():
    mac = b"\x5c\xcf\x7f\x00\x78\x8a"
    for rand, apikey in ((b"\x00" * 16, "00000000-0000-4000-8000-000000000000"),
                         (b"\xff" * 16, "ffffffff-ffff-4fff-bfff-ffffffffffff")):
        s = settings.defaults()
        settings.make_identity(s, mac, b"\x0a\x1b\x2c\x3d", rand)
        assert (s["deviceid"], s["apikey"], s["chipid"]) == ("100000788a", apikey, "0a1b2c3d")
    s = settings.defaults()
    settings.make_identity(s, mac, b"\x24\x0a\xc4\x12\x34\x56", os.urandom(16))
    assert _uuid4_ok(s["apikey"]), s["apikey"]
    assert s["chipid"] == "240ac4123456"
    assert _uuid4_ok("4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea") and not _uuid4_ok("4b21ebbe-8870-1d4a-93f2-7c6cfeff5fea")


def test_make_identity_keeps_existing():
    s = settings.defaults()
    s.update(deviceid="1000aabbcc", apikey="4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea", chipid="cafe")
    settings.make_identity(s, b"\x00" * 6, b"\x01" * 4, b"\x02" * 16)
    assert (s["deviceid"], s["apikey"], s["chipid"]) == ("1000aabbcc", "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea", "cafe")
