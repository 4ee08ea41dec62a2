# Stand-in for MicroPython's `network` on the virtual board (runs on the MicroPython VM).
# Virtual access points come from the board's configuration (SSID -> password).
import time

import vboard

STA_IF = 0
AP_IF = 1
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

if vboard.CHIP == "esp32":
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
    STAT_BEACON_TIMEOUT, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 200, 201, 202
    STAT_ASSOC_FAIL, STAT_HANDSHAKE_TIMEOUT = 203, 204
    _CONFIG_KEYS = ("mac", "ssid", "essid", "key", "password", "security", "authmode",
                    "channel", "hidden", "txpower", "pm", "max_clients", "reconnects")
else:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD = 0, 1, 2
    STAT_NO_AP_FOUND, STAT_CONNECT_FAIL, STAT_GOT_IP = 3, 4, 5
    _CONFIG_KEYS = ("mac", "ssid", "essid", "key", "password", "security", "authmode",
                    "channel", "hidden", "txpower", "pm")

_ASSOCIATE_MS = 300  # how long a join takes on the virtual radio


def loopback_port(port):
    # the device's port 80 is served on the board's chosen loopback port
    return vboard.CONFIG["http_port"] if port == 80 else port


class _Interface:
    def __init__(self, index):
        self.index = index
        self.up = False
        self.conf = {"mac": vboard.mac(index), "ssid": "", "key": "", "security": 0}
        self.addr = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        self.target = None  # STA: (ssid, password) being joined
        self.since = 0


_IFACES = [_Interface(STA_IF), _Interface(AP_IF)]


class WLAN:
    def __init__(self, index=STA_IF):
        self._i = _IFACES[index]

    def active(self, up=None):
        if up is None:
            return self._i.up
        self._i.up = bool(up)
        if not up:
            self._i.target = None
        return None

    def config(self, *args, **kwargs):
        if args:
            return self._i.conf[args[0]]
        for key in kwargs:
            if key not in _CONFIG_KEYS:
                raise ValueError("unknown config param")  # the ESP8266 raises too
        self._i.conf.update(kwargs)
        return None

    def ifconfig(self, addr=None):
        if addr is None:
            return self._i.addr
        self._i.addr = addr
        return None

    def connect(self, ssid, key=""):
        if not self._i.up:
            raise OSError("STA must be active")
        self._i.target = (ssid, key)
        self._i.since = time.ticks_ms()

    def disconnect(self):
        self._i.target = None

    def status(self):
        i = self._i
        if i.target is None:
            return STAT_IDLE
        if time.ticks_diff(time.ticks_ms(), i.since) < _ASSOCIATE_MS:
            return STAT_CONNECTING
        ssid, key = i.target
        aps = vboard.CONFIG["wifi"]
        if ssid not in aps:
            return STAT_NO_AP_FOUND
        if aps[ssid] != key:
            return STAT_WRONG_PASSWORD
        if vboard.wifi_down():
            return STAT_CONNECTING  # both ports keep retrying on their own
        return STAT_GOT_IP

    def isconnected(self):
        return self.status() == STAT_GOT_IP
