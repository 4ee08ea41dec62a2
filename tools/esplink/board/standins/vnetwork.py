# Stand-in for the chip's `network` (runs on the VM): the station and the soft-AP,
# with each port's status codes and, on the ESP32, its station's quirks.
import time

import vboard

CHIP = vboard.CHIP
STA_IF = 0
AP_IF = 1
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3
_ATTEMPT_MS = 300  # one association attempt: a chip takes 1-3 s; the model is quick

if CHIP == "esp32":
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
    STAT_BEACON_TIMEOUT, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 200, 201, 202
    STAT_ASSOC_FAIL, STAT_HANDSHAKE_TIMEOUT = 203, 204
    _KEYS = " mac ssid essid key password security authmode channel hidden txpower pm max_clients reconnects "
else:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_CONNECT_FAIL, STAT_GOT_IP = 0, 1, 2, 3, 4, 5
    _KEYS = " mac ssid essid key password security authmode channel hidden txpower pm "

# ESP-IDF's disconnect reasons the ESP32 model gives (esp_wifi_types.h)
_ASSOC_LEAVE = 8
_4WAY_HANDSHAKE_TIMEOUT = 15
# a wrong password, attempt after attempt: the ESP32 reports it as any of these
_WRONG_KEY_REASONS = (15, 204, 202)


def loopback_port(port):
    # the device's ports map onto the loopback ports the host chose: 80 (HTTP), 7001
    # (ESP-Touch broadcasts), 18266 (where the phone waits for the touch ack) and 53
    # (the captive portal's DNS)
    if port == 80:
        return vboard.CONFIG["http_port"]
    if port == 7001:
        return vboard.CONFIG["touch_port"]
    if port == 18266:
        return vboard.CONFIG["ack_port"]
    if port == 53:
        return vboard.CONFIG["dns_port"]
    return port


def mac(index):
    # a stable MAC per board, derived from its seed; the AP's is the STA's + 1
    seed = vboard.CONFIG["seed"]
    return bytes((0x18, 0xFE, 0x34, seed >> 16 & 0xFF, seed >> 8 & 0xFF, (seed + index) & 0xFF))


def _outcome(target):
    """The reason an association attempt with `target` ends with (0: it joins)."""
    aps = vboard.CONFIG["wifi"]
    ssid, key = target
    if ssid not in aps or vboard.wifi_down():
        return 201  # no AP found
    return 0 if aps[ssid] == key else 202  # auth failed


class WLAN:
    _all = []

    def __new__(cls, index=STA_IF):
        # one object per interface, as on a chip
        while len(cls._all) <= index:
            w = object.__new__(cls)
            w.up = w.requested = w.connected = False
            w.target, w.since, w.reason, w.tries = None, 0, 0, 0
            w.conf = {"mac": mac(len(cls._all))}
            w.addr = ("0.0.0.0",) * 4
            cls._all.append(w)
        return cls._all[index]

    def active(self, up=None):
        if up is None:
            return self.up
        self.up = bool(up)
        if not up:
            self.requested = self.connected = False
            self.target = None

    def config(self, *args, **kwargs):
        if args:
            if args[0] not in self.conf:
                raise ValueError("unknown config param")
            return self.conf[args[0]]
        for key in kwargs:
            if " %s " % key not in _KEYS:
                raise ValueError("unknown config param")  # as the ESP8266 does
        self.conf.update(kwargs)

    def ifconfig(self, addr=None):
        if addr is None:
            if self is WLAN._all[STA_IF] and self.isconnected():
                return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")  # the LAN is loopback
            return self.addr
        self.addr = addr

    def connect(self, ssid, key=""):
        if not self.up:
            raise OSError("Wifi Not Started" if CHIP == "esp32" else "STA must be active")
        if CHIP == "esp32":
            self._advance()
            if self.requested and not self.connected:
                # esp_wifi_connect() while the driver is still trying (network_wlan.c:301-330)
                raise OSError("Wifi Internal Error")
            self.connected = False
            self.tries = 0
        self.target = (ssid, key)
        self.requested = True
        self.since = time.ticks_ms()

    def disconnect(self):
        if not self.up:
            raise OSError("Wifi Not Started")  # as the ESP32 does
        if CHIP == "esp32":
            self._advance()
            if self.requested or self.connected:
                self.reason = _ASSOC_LEAVE  # the driver's "disconnected: leaving" event
        self.requested = self.connected = False
        self.target = None

    def status(self):
        if CHIP == "esp32":
            return self._esp32_status()
        if self.target is None:
            return STAT_IDLE
        if time.ticks_diff(time.ticks_ms(), self.since) < _ATTEMPT_MS or vboard.wifi_down():
            return STAT_CONNECTING  # associating, or retrying while the AP is gone
        reason = _outcome(self.target)
        return STAT_GOT_IP if not reason else STAT_NO_AP_FOUND if reason == 201 else STAT_WRONG_PASSWORD

    def scan(self):
        """(ssid, bssid, channel, RSSI, security, hidden) per network heard: the --scan
        list, then every --wifi access point not on it, at -60 dBm."""
        if not self.up:
            raise OSError("STA must be active" if CHIP == "esp8266" else "Wifi Not Started")
        heard = [(ssid, rssi) for ssid, rssi in vboard.CONFIG["scan"]]
        listed = [ssid for ssid, _ in heard]
        heard += [(ssid, -60) for ssid in vboard.CONFIG["wifi"] if ssid not in listed]
        time.sleep_ms(100)  # a chip's scan blocks for a second or two
        return [(ssid.encode(), mac(20 + k), 6, rssi, AUTH_WPA2_PSK, False) for k, (ssid, rssi) in enumerate(heard)]

    def isconnected(self):
        if CHIP == "esp32":
            self._advance()
            return self.connected
        return self.status() == STAT_GOT_IP

    # ---- the ESP32's station (ports/esp32/network_wlan.c, v1.25.0)

    def _advance(self):
        """Run the driver's event handler up to now: attempts end, the driver retries
        on its own while a connection is requested, a lost AP disconnects."""
        now = time.ticks_ms()
        if self.connected and vboard.wifi_down():
            self.connected = False
            self.reason = STAT_BEACON_TIMEOUT
            self.since = now
        while self.requested and not self.connected and time.ticks_diff(now, self.since) >= _ATTEMPT_MS:
            reason = _outcome(self.target)
            if reason == 202:
                reason = _WRONG_KEY_REASONS[self.tries % 3]
            self.tries += 1
            if reason:
                self.reason = reason  # kept until GOT_IP or the next reason: stale across attempts
                self.since = time.ticks_add(self.since, _ATTEMPT_MS)  # the driver tries again
            else:
                self.connected = True
                self.reason = 0

    def _esp32_status(self):
        # the order of network_wlan_status()
        if self is not WLAN._all[STA_IF]:
            return None
        self._advance()
        r = self.reason
        if self.connected:
            return STAT_GOT_IP
        if r == STAT_NO_AP_FOUND:
            return r
        if r == STAT_WRONG_PASSWORD or r == 205:  # AUTH_FAIL, CONNECTION_FAIL
            return STAT_WRONG_PASSWORD
        if r == _ASSOC_LEAVE:
            return STAT_IDLE
        if self.requested:
            return STAT_CONNECTING
        if r == 0:
            return STAT_IDLE
        return r  # a raw ESP-IDF reason
