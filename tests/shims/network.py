"""CPython stand-in for MicroPython's `network` module (ESP8266 constants), so firmware imports under pytest."""

STA_IF = 0
AP_IF = 1

STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = 2
STAT_NO_AP_FOUND = 3
STAT_CONNECT_FAIL = 4
STAT_GOT_IP = 5

AUTH_OPEN = 0
AUTH_WPA2_PSK = 3


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = False
        self._config = {"mac": b"\x5c\xcf\x7f\x00\x78\x8a", "ssid": ""}
        self._ifconfig = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def config(self, *names, **values):
        if names:
            return self._config[names[0]]
        self._config.update(values)

    def ifconfig(self, conf=None):
        if conf is None:
            return self._ifconfig
        self._ifconfig = tuple(conf)

    def connect(self, ssid=None, key=None):
        pass

    def disconnect(self):
        pass

    def status(self):
        return STAT_IDLE

    def isconnected(self):
        return False
