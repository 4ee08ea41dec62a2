# settings.py (defaults, the atomic save, pairing) and recover.py (the boot's read-back:
# recovery from interrupted saves and damaged files, the identity's two copies, power
# cuts at every byte of every write).
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py); every test
# that touches files runs in a fresh directory.
import io
import json
import os

import recover
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
        assert recover.load("esp32") == settings.defaults("esp32")
        assert recover.load("esp8266") == settings.defaults("esp8266")
        assert os.listdir() == []  # loading writes nothing


def test_save_load_round_trip():
    with fresh_dir():
        s = recover.load()
        s.update(ssid="caf\u00e9", password="p\"w\\d", port=443, activated=True, token="t" * 40)
        settings.save(s)
        assert os.listdir() == ["settings.json"]
        assert recover.load() == s


def test_power_cut_before_rename_keeps_old_settings():
    with fresh_dir():
        old = recover.load()
        old["ssid"] = "old"
        settings.save(old)
        new = dict(old, ssid="new")
        settings.os = _PowerCutBeforeRename()
        try:
            raises(OSError, settings.save, new)
        finally:
            settings.os = os
        assert sorted(os.listdir()) == ["settings.json", "settings.json.tmp"]
        assert recover.load()["ssid"] == "old"
        assert os.listdir() == ["settings.json"]  # the stale temp file is gone


def test_partial_temp_file_beside_settings_is_discarded():
    with fresh_dir():
        write("settings.json", saved(ssid="old"))
        write("settings.json.tmp", saved(ssid="new")[:40])
        assert recover.load()["ssid"] == "old"
        assert not exists("settings.json.tmp")
        assert json.loads(read("settings.json"))["ssid"] == "old"


def test_interrupted_rename_on_fat_is_recovered():
    # FAT renames by deleting the target first: the new copy is complete in the temp file
    with fresh_dir():
        write("settings.json.tmp", saved(ssid="new", port=443))
        s = recover.load()
        assert (s["ssid"], s["port"]) == ("new", 443)
        assert os.listdir() == ["settings.json"]
        assert json.loads(read("settings.json"))["ssid"] == "new"


def test_interrupted_first_save_gives_defaults():
    with fresh_dir():
        write("settings.json.tmp", saved(ssid="new")[:40])
        assert recover.load() == settings.defaults()


def test_truncated_settings_give_defaults():
    text = saved(ssid="home", password="12345678")
    # MicroPython's json.loads accepts some of these cuts: the guard must not
    for cut in (text[: text.index('"password"')], text[: text.index('"password"') - 2], text[:1], text[:-1]):
        with fresh_dir():
            write("settings.json", cut)
            assert recover.load() == settings.defaults(), cut
    with fresh_dir():
        write("settings.json", "\x00\x00garbage")
        assert recover.load() == settings.defaults()


def test_wrong_typed_values_fall_back_unknown_keys_dropped():
    with fresh_dir():
        write("settings.json", json.dumps({"ssid": "home", "port": "x", "activated": "yes",
                                           "led_active_low": 1, "bogus": 1}))
        s = recover.load("esp32")
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
        recover.make_identity(s, mac, b"\x0a\x1b\x2c\x3d", rand)
        assert (s["deviceid"], s["apikey"], s["chipid"]) == ("100000788a", apikey, "0a1b2c3d")
    s = settings.defaults()
    recover.make_identity(s, mac, b"\x24\x0a\xc4\x12\x34\x56", os.urandom(16))
    assert _uuid4_ok(s["apikey"]), s["apikey"]
    assert s["chipid"] == "240ac4123456"
    assert _uuid4_ok("4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea") and not _uuid4_ok("4b21ebbe-8870-1d4a-93f2-7c6cfeff5fea")


def test_make_identity_keeps_existing():
    s = settings.defaults()
    s.update(deviceid="1000aabbcc", apikey="4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea", chipid="cafe")
    recover.make_identity(s, b"\x00" * 6, b"\x01" * 4, b"\x02" * 16)
    assert (s["deviceid"], s["apikey"], s["chipid"]) == ("1000aabbcc", "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea", "cafe")



# ---- identity and device key: kept apart from settings.json, in two verified copies

KEY = "0123456789abcdef0123456789abcdef01234567"  # what flashing writes
KEY2 = "fedcba9876543210fedcba9876543210fedcba98"
MAC = b"\x5c\xcf\x7f\x00\x78\x8a"
UID = b"\x0a\x1b\x2c\x3d"
SEED = (MAC, UID, b"\x11" * 16)
LATER = (MAC, UID, b"\x22" * 16)  # a later boot's random bytes: a remade apikey would differ
IDENT = ["100000788a", "11111111-1111-4111-9111-111111111111", "0a1b2c3d", KEY]
LATER_APIKEY = "22222222-2222-4222-a222-222222222222"
PAIRED_VALUES = {"ssid": "home", "password": "pw-secret-123", "server": "cloud.example", "port": 443,
                 "token": "t0k3n" * 8, "activated": True, "led_pin": 5}


def boot(seed=LATER, platform="esp8266"):
    """recover.load as App does at boot; returns (settings, the lines it printed)."""
    lines = []
    recover.print = lambda *args: lines.append(" ".join(str(a) for a in args))
    try:
        return recover.load(platform, seed), lines
    finally:
        recover.print = print


def identity(s):
    return [s[k] for k in IDENTITY]


def no_secret(lines, s=None):
    text = "\n".join(lines)
    values = [KEY, KEY2, PAIRED_VALUES["password"], PAIRED_VALUES["token"], IDENT[1]]
    if s:
        values += [s["apikey"], s["device_key"], s["password"], s["token"]]
    for value in values:
        assert not value or value not in text, text


def flashed(extra=None):
    # what tools/flash.sh and the virtual board's provision write before the first boot
    d = {"device_key": KEY}
    d.update(extra or {})
    write("settings.json", json.dumps(d))


def paired_board():
    """A board's flash after its first boot and a pairing: returns its settings."""
    flashed()
    s, lines = boot(SEED)
    assert identity(s) == IDENT and lines == [], lines
    s.update(PAIRED_VALUES)
    settings.save(s)
    return s


def copies():
    return [read(name) for name in recover.COPIES]


def test_first_boot_moves_the_flashed_device_key_into_the_copies():
    with fresh_dir():
        flashed({"tls": False})
        s, lines = boot(SEED)
        assert identity(s) == IDENT and s["tls"] is False and lines == []
        assert sorted(os.listdir()) == ["identity", "identity.bak", "settings.json"]
        on_flash = json.loads(read("settings.json"))
        assert "device_key" not in on_flash and KEY not in read("settings.json")
        assert [on_flash[k] for k in IDENTITY[:3]] == IDENT[:3] and on_flash["tls"] is False
        first = copies()
        assert first[0] == first[1] and KEY in first[0]
        # the next boots: the same identity, nothing written
        written = read("settings.json")
        for _ in range(2):
            again, lines = boot(LATER)
            assert again == s and lines == []
        assert copies() == first and read("settings.json") == written


def test_an_older_firmware_s_settings_keep_their_identity_and_key():
    # before the copies existed, settings.json held identity and device key
    with fresh_dir():
        old = settings.defaults()
        old.update(PAIRED_VALUES)
        old.update(zip(IDENTITY, IDENT))
        write("settings.json", json.dumps(old))
        s, lines = boot(LATER)
        assert identity(s) == IDENT and s["ssid"] == "home" and lines == []
        assert copies()[0] == copies()[1] and "device_key" not in json.loads(read("settings.json"))
        assert boot(LATER)[0] == s


def test_a_new_device_key_from_flashing_replaces_the_old_one():
    with fresh_dir():
        paired_board()
        on_flash = json.loads(read("settings.json"))
        on_flash["device_key"] = KEY2  # a re-flash without erasing adds the key to the settings
        write("settings.json", json.dumps(on_flash))
        s, lines = boot(LATER)
        assert identity(s) == IDENT[:3] + [KEY2] and s["ssid"] == "home"
        assert lines == ["identity: new device key from flashing"], lines
        assert KEY2 in copies()[0] and copies()[0] == copies()[1]
        assert "device_key" not in json.loads(read("settings.json"))
        assert boot(LATER) == (s, [])


def test_truncated_settings_at_every_offset_keep_identity_and_key():
    with fresh_dir():
        s = paired_board()
        text, kept = read("settings.json"), copies()
        want = settings.defaults()
        want.update(zip(IDENTITY, IDENT))
        for cut in range(len(text)):
            write("settings.json", text[:cut])
            got, lines = boot(LATER)
            assert got == want, cut
            assert lines == ["settings: settings.json unreadable (%d B); its settings lost" % cut], (cut, lines)
            no_secret(lines, s)
        assert copies() == kept  # never rewritten
        # the recovered settings were written back: the next boot finds them whole
        assert boot(LATER) == (want, [])


def _spans(text, keys):
    # where each field ("key": value) lies in settings.json's text
    spans = {}
    for key in keys:
        start = text.index('"%s": ' % key)
        end = text.find(', "', start)
        spans[key] = (start, end if end > 0 else len(text) - 1)
    return spans


def test_every_single_byte_flip_keeps_identity_and_key_and_names_what_it_lost():
    with fresh_dir():
        s = paired_board()
        data = read("settings.json").encode()
        kept = copies()
        spans = _spans(data.decode(), [k for k in s if k != "device_key"])
        d = settings.defaults()
        for i in range(len(data)):
            for flip in (0x01, 0x80):
                damaged = bytearray(data)
                damaged[i] ^= flip
                with open("settings.json", "wb") as f:
                    f.write(damaged)
                got, lines = boot(LATER)
                where = (i, flip, lines)
                assert identity(got) == IDENT, where
                no_secret(lines, s)
                unreadable = "settings: settings.json unreadable (%d B); its settings lost" % len(data) in lines
                lost = [ln for ln in lines if ln.startswith("settings: lost ")]
                named = lost[0][len("settings: lost "):].split(", ") if lost else []
                assert len(lines) == unreadable + len(lost), where
                for key in s:
                    if key in IDENTITY or got[key] == s[key]:
                        continue
                    if got[key] == d[key] and (unreadable or key in named):
                        continue  # lost, and said so
                    # a value changed but still well typed (home -> hnme): only the field hit
                    start, end = spans[key]
                    assert start <= i <= end, (key, where)
                for key in named:
                    assert got[key] == d[key], (key, where)
        assert copies() == kept


def test_empty_garbage_and_oversized_settings_keep_identity_and_key():
    nested = '{"ssid": "home", "a": ' + "[" * 3000 + "]" * 3000 + "}"  # 6 KB, deeply nested
    deep_small = '{"ssid": "home", "a": ' + "[" * 900 + "]" * 900 + "}"  # under the size cap
    padded = None  # 60 KB of valid JSON, refused unread: written in pieces (the VM's test heap)
    for text in ("", "\x00\x00garbage", "{}" * 2000, nested, deep_small, padded, "null", "[1]"):
        with fresh_dir():
            s = paired_board()
            kept = copies()
            if text is None:
                with open("settings.json", "w") as f:
                    f.write('{"ssid": "home", "pad": "')
                    for _ in range(60):
                        f.write("x" * 1000)
                    f.write('"}')
                text = "padded"
            else:
                write("settings.json", text)
            got, lines = boot(LATER)
            assert identity(got) == IDENT, text[:20]
            assert got["ssid"] == "", text[:20]  # the file gave nothing, not even the ssid
            assert len(lines) == 1 and lines[0].startswith("settings: settings.json unreadable ("), lines
            assert lines[0].endswith(" B); its settings lost"), lines
            no_secret(lines, s)
            assert copies() == kept
            assert len(read("settings.json")) < 1024  # written back whole


def test_wrongly_typed_and_missing_fields_are_named_never_their_values():
    with fresh_dir():
        s = paired_board()
        on_flash = json.loads(read("settings.json"))
        on_flash["port"] = "443"
        on_flash["password"] = 12345678  # a value must never be printed
        del on_flash["token"]
        on_flash["tokem"] = "t0k3n" * 8  # a byte changed in a name
        write("settings.json", json.dumps(on_flash))
        got, lines = boot(LATER)
        assert identity(got) == IDENT and got["ssid"] == "home" and got["led_pin"] == 5
        assert (got["port"], got["password"], got["token"]) == (8443, "", "")
        assert len(lines) == 1 and lines[0].startswith("settings: lost "), lines
        assert sorted(lines[0][len("settings: lost "):].split(", ")) == ["password", "port", "token"]
        assert "12345678" not in lines[0]
        no_secret(lines, s)
        assert boot(LATER) == (got, [])  # written back: said once


def _damage(name, how):
    data = read(name)
    write(name, {"cut": data[:-7], "flip": data[:30] + chr(ord(data[30]) ^ 1) + data[31:], "empty": "",
                 "sum": ("0" if data[0] != "0" else "1") + data[1:]}[how])


def test_a_damaged_identity_copy_is_restored_from_the_other():
    for which in (0, 1):
        for how in ("cut", "flip", "empty", "sum", "gone"):
            with fresh_dir():
                s = paired_board()
                kept = copies()
                name = recover.COPIES[which]
                if how == "gone":
                    os.remove(name)
                else:
                    _damage(name, how)
                got, lines = boot(LATER)
                assert got == s, (which, how)
                assert copies() == kept, (which, how)  # rewritten byte for byte
                assert lines == ([] if how == "gone" else ["identity: %s damaged" % name]), lines
                assert boot(LATER) == (s, [])


def test_both_copies_damaged_recover_what_settings_json_mirrors_and_say_what_was_lost():
    with fresh_dir():
        s = paired_board()
        for name in recover.COPIES:
            _damage(name, "flip")
        got, lines = boot(LATER)
        # deviceid, apikey, chipid from settings.json's mirror; the device key is nowhere else
        assert identity(got) == IDENT[:3] + [""] and got["ssid"] == "home"
        assert lines == ["identity: identity damaged", "identity: identity.bak damaged",
                         "settings: lost device_key"], lines
        no_secret(lines, s)
        assert boot(LATER) == (got, [])
    with fresh_dir():
        paired_board()
        for name in recover.COPIES:
            _damage(name, "cut")
        write("settings.json", "garbage")
        got, lines = boot(LATER)
        # deviceid and chipid come from the chip again; the apikey is a new one
        assert identity(got)[0] == IDENT[0] and identity(got)[2] == IDENT[2]
        assert got["apikey"] not in ("", IDENT[1]) and got["device_key"] == ""
        assert lines[-1] == "settings: lost deviceid, apikey, chipid, device_key", lines
        assert boot(LATER)[0] == got


# ---- power cuts at every byte of every write


class PowerCut(Exception):
    pass


class _CutFile(io.IOBase):
    # a file being written while the power lasts: what fits the budget reaches the disk
    def __init__(self, flash, f):
        self.flash, self.f = flash, f

    def write(self, data):
        n = min(len(data), self.flash.budget)
        self.f.write(data[:n])
        self.flash.budget -= n
        if n < len(data):
            raise PowerCut()
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def close(self):
        self.f.close()


class _Flash:
    """Stands in for settings' open and os: every byte written and every rename or
    remove spends one unit of `budget`; when it is spent the power goes (PowerCut)."""

    def __init__(self, budget):
        self.budget = budget

    def open(self, path, mode="r"):
        f = open(path, mode)
        return _CutFile(self, f) if "w" in mode else f

    def _spend(self):
        if self.budget <= 0:
            raise PowerCut()
        self.budget -= 1

    def rename(self, old, new):
        self._spend()
        os.rename(old, new)

    def remove(self, path):
        self._spend()
        os.remove(path)

    def stat(self, path):
        return os.stat(path)


def cut_everywhere(setup, operation, check):
    """For every point the power could go during operation(): set up, cut there, then
    check() the next boot. Returns how many cuts were made."""
    budget = 0
    while True:
        with fresh_dir():
            setup()
            flash = _Flash(budget)
            settings.open = recover.open = flash.open
            settings.os = recover.os = flash
            try:
                operation()
                done = True
            except PowerCut:
                done = False
            finally:
                settings.open = recover.open = open
                settings.os = recover.os = os
            check(done)
        if done:
            return budget
        budget += 1


def test_power_cuts_during_the_first_boot():
    ids = []

    def check(done):
        s, lines = boot(LATER)
        assert s["device_key"] == KEY and s["tls"] is False, lines
        # 1: the identity of the interrupted boot; 0: one made again (apikey from LATER)
        assert identity(s) in (IDENT, IDENT[:1] + [LATER_APIKEY] + IDENT[2:]), lines
        ids.append(1 if identity(s) == IDENT else 0)
        assert boot(LATER)[0] == s  # and it stays
        no_secret(lines, s)

    cuts = cut_everywhere(lambda: flashed({"tls": False}), lambda: recover.load("esp8266", SEED), check)
    assert cuts > 300
    # the identity is born when its first copy is whole: after that no cut changes it
    born = ids.index(1)
    assert born > 0 and ids[born:] == [1] * (len(ids) - born) and ids[:born] == [0] * born


def test_power_cuts_while_saving_a_pairing_leave_old_or_new_and_the_identity():
    new = {}

    def setup():
        s = paired_board()
        new.clear()
        new.update(s, ssid="office", password="office-pw-123", token="n" * 40)

    def check(done):
        s, lines = boot(LATER)
        assert identity(s) == IDENT, lines
        assert s["ssid"] in ("home", "office") and (s["ssid"] == "office") == (s["token"] == "n" * 40)
        if done:
            assert s == new
        assert s == boot(LATER)[0]

    assert cut_everywhere(setup, lambda: settings.save(new), check) > 300


def test_power_cuts_while_a_new_device_key_is_taken():
    def setup():
        paired_board()
        on_flash = json.loads(read("settings.json"))
        on_flash["device_key"] = KEY2
        write("settings.json", json.dumps(on_flash))

    def check(done):
        s, lines = boot(LATER)
        # settings.json keeps the new key until both copies hold it
        assert identity(s) == IDENT[:3] + [KEY2] and s["ssid"] == "home", lines
        assert copies()[0] == copies()[1] and "device_key" not in json.loads(read("settings.json"))

    assert cut_everywhere(setup, lambda: recover.load("esp8266", LATER), check) > 200


def test_power_cuts_while_repairing_a_copy_and_saving_at_once():
    # copy 1 damaged and settings.json damaged: the boot rewrites both; cut anywhere
    def setup():
        paired_board()
        _damage("identity", "flip")
        _damage("settings.json", "cut")

    def check(done):
        s, lines = boot(LATER)
        assert identity(s) == IDENT, lines
        assert copies()[0] == copies()[1]

    assert cut_everywhere(setup, lambda: recover.load("esp8266", LATER), check) > 300


def test_interrupted_saves_of_both_files_leave_old_or_new():
    # written by hand: a partial temp file beside settings.json and a partial copy 1
    with fresh_dir():
        s = paired_board()
        whole = copies()
        text = read("settings.json")
        new = dict(s, ssid="office")
        new_text = json.dumps({k: new[k] for k in new if k != "device_key"})
        for cut in range(0, len(new_text), 7):
            for copy_cut in range(0, len(whole[0]), 11):
                write("settings.json", text)
                write("settings.json.tmp", new_text[:cut])
                write("identity", whole[0][:copy_cut])
                got, lines = boot(LATER)
                assert got == s, (cut, copy_cut)
                assert copies() == whole and os.listdir().count("settings.json.tmp") == 0
        # the rename's FAT variant: settings.json gone, the temp file whole
        os.remove("settings.json")
        write("settings.json.tmp", new_text)
        write("identity.bak", whole[1][:40])
        assert boot(LATER)[0] == new and copies() == whole
