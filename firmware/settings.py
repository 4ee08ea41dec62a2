# The device's settings: defaults, the atomic save, factory reset, pairing. What boot
# does with them (read back, checked, recovered; the identity and device key kept in
# their own copies) is in recover.py, which leaves the heap once the boot is done.
#
# settings.json holds what pairing sets, the wiring and the rest, and mirrors the
# identity for people and tools; never the device key, which lives in the identity
# copies: a device key in settings.json is always one that flashing put there.
import json
import os

FILE = "settings.json"
TMP = "settings.json.tmp"


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


def save(s, same=None):
    """Write settings.json unless `same` (what it holds) says exactly this already: a
    complete temp file, then rename, so a power cut leaves the old or the new file."""
    key = s.pop("device_key")  # it lives in the copies, never in settings.json
    try:
        if s != same:
            with open(TMP, "w") as f:
                json.dump(s, f)  # streamed: no copy of the whole text in the heap
            os.rename(TMP, FILE)
    finally:
        s["device_key"] = key


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
