# The device's settings: one JSON file on flash, written atomically.
import json
import os

import jsonobj

FILE = "settings.json"
_TMP = "settings.json.tmp"


def defaults(platform="esp8266"):
    return {
        # identity: made at first boot, kept forever (factory reset too)
        "deviceid": "",
        "apikey": "",
        "chipid": "",
        "device_key": "",  # written at flash time
        # what pairing sets; factory reset forgets these
        "ssid": "",
        "password": "",
        "server": "iot.espressif.cn",
        "port": 8443,
        "tls": True,  # False: plain TCP, the cloud's port 8000
        "ntp_server": "pool.ntp.org",  # the clock a verified TLS connection needs (ESP32)
        "token": "",
        "activated": False,
        # pairing AP (empty ap_ssid means ITEAD-<deviceid>)
        "ap_ssid": "",
        "ap_password": "12345678",
        "ap_ip": "10.10.7.1",
        "http_port": 80,
        "pair_window": 300,  # s, when there is a network to go back to
        "join_timeout": 20,  # s
        "watchdog": 30,  # s without the event loop running: reset
        # wiring: NodeMCU / DevKit defaults
        "button_pin": 0,
        "button_active_low": True,
        "led_pin": 2,
        "led_active_low": platform == "esp8266",
    }


# what factory reset forgets (identity and device key stay)
PAIRED = ("ssid", "password", "server", "port", "token", "activated")


def load(platform="esp8266"):
    """Settings from flash merged over defaults. Values of the wrong type are
    ignored, so a damaged file can at worst bring back a default."""
    s = defaults(platform)
    saved = _read(FILE)
    if saved is None:
        # settings.json missing or unreadable: a complete temp copy is the best there is
        saved = _read(_TMP)
        if saved is not None:
            os.rename(_TMP, FILE)
    else:
        _remove(_TMP)  # a save that stopped before its rename
    if isinstance(saved, dict):
        for key, value in saved.items():
            if key in s and type(value) is type(s[key]):
                s[key] = value
    return s


def save(s):
    # a complete temp file, then rename: a power cut leaves the old or the new file
    with open(_TMP, "w") as f:
        json.dump(s, f)  # streamed: no copy of the whole file in the heap
    os.rename(_TMP, FILE)


def forget(s, platform="esp8266"):
    d = defaults(platform)
    for key in PAIRED:
        s[key] = d[key]


def apply_pairing(s, pairing):
    # a new token means a new owner: the cloud must see a fresh activation
    if "token" in pairing and pairing["token"] != s["token"]:
        s["activated"] = False
    for key in ("ssid", "password", "server", "port", "token"):
        if key in pairing:
            s[key] = pairing[key]


def make_identity(s, mac, uid, rand):
    """deviceid from the station MAC, apikey a UUID v4 from 16 random bytes."""
    if not s["deviceid"]:
        s["deviceid"] = "1000" + _hex(mac[-3:])
    if not s["apikey"]:
        b = bytearray(rand)
        b[6] = b[6] & 0x0F | 0x40
        b[8] = b[8] & 0x3F | 0x80
        h = _hex(b)
        s["apikey"] = "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
    if not s["chipid"]:
        s["chipid"] = _hex(uid)


def _hex(b):
    return "".join("%02x" % x for x in b)


def _read(path):
    try:
        with open(path, "rb") as f:
            return jsonobj.loads(f.read())
    except (OSError, ValueError):
        return None


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
