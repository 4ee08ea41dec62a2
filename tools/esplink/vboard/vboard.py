# The virtual board (runs on the MicroPython VM): one module that stands in for both
# `network` and `machine` -- one module, not two, because every byte of its heap is
# charged to the board, which a chip's C modules would not be. The host presses the
# button and reads the LED through a UDP control socket.
import gc
import json
import os
import select
import socket
import sys
import time

CONFIG = json.loads(os.getenv("ESPLINK_VBOARD"))
CHIP = CONFIG["chip"]

_PROBE = CONFIG["heap_probe"]
_pressed_until = 0
_wifi_down_until = 0
led_level = 0
led_changes = 0

_ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# the host picks the port: the unix port's sockets have no getsockname()
_ctl.bind(socket.getaddrinfo("127.0.0.1", CONFIG["control_port"])[0][-1])
_poller = select.poll()
_poller.register(_ctl, select.POLLIN)


def mac(index):
    # a stable MAC per board, derived from its seed; the AP's is the STA's + 1
    seed = CONFIG["seed"]
    return bytes((0x18, 0xFE, 0x34, seed >> 16 & 0xFF, seed >> 8 & 0xFF, (seed + index) & 0xFF))


def unique_id():
    uid = bytes((CONFIG["seed"] >> 8 & 0xFF, CONFIG["seed"] & 0xFF, 0xC0, 0xDE, 0x00, 0x01))
    return uid if CHIP == "esp32" else uid[:4]


# what runs in the background on a chip (the smartconfig stand-in's acks): polled
# with the button, every 20 ms
background = []


def button_down():
    if _PROBE:
        sample_heap()
    poll_control()
    for step in background:
        step()
    return time.ticks_diff(_pressed_until, time.ticks_ms()) > 0


def sample_heap():
    # live heap after a collection: what the program really holds at this instant
    global heap_peak
    gc.collect()
    heap_peak = max(heap_peak, gc.mem_alloc())


def wifi_down():
    return time.ticks_diff(_wifi_down_until, time.ticks_ms()) > 0


def poll_control():
    for _ in _poller.ipoll(0):
        msg, addr = _ctl.recvfrom(64)
        try:
            _command(msg.decode().split(), addr)
        except (IndexError, ValueError):
            _ctl.sendto(b'{"error": "bad command"}', addr)


def _command(words, addr):
    global _pressed_until, _wifi_down_until
    if words[0] == "press":
        _pressed_until = time.ticks_add(time.ticks_ms(), int(words[1]))
    elif words[0] == "wifi-down":
        _wifi_down_until = time.ticks_add(time.ticks_ms(), int(words[1]))
    elif words[0] == "reset":  # the board's EN/RESET button
        _ctl.sendto(b"{}", addr)
        reset()
    lit = led_level ^ (1 if CONFIG["led_active_low"] else 0)
    reply = '{"led": %d, "led_changes": %d, "heap_base": %d, "heap_peak": %d}' % (
        lit, led_changes, heap_base, heap_peak)
    _ctl.sendto(reply.encode(), addr)


# ---- network

STA_IF = 0
AP_IF = 1
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

if CHIP == "esp32":
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
    STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 201, 202
    _KEYS = " mac ssid essid key password security authmode channel hidden txpower pm max_clients reconnects "
else:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_GOT_IP = 0, 1, 2, 3, 5
    _KEYS = " mac ssid essid key password security authmode channel hidden txpower pm "


def loopback_port(port):
    # the device's ports map onto the loopback ports the host chose: 80 (HTTP), 7001
    # (ESP-Touch broadcasts) and 18266 (where the phone waits for the touch ack)
    if port == 80:
        return CONFIG["http_port"]
    if port == 7001:
        return CONFIG["touch_port"]
    if port == 18266:
        return CONFIG["ack_port"]
    return port


class WLAN:
    _all = []

    def __new__(cls, index=STA_IF):
        # one object per interface, as on a chip
        while len(cls._all) <= index:
            w = object.__new__(cls)
            w.up, w.target, w.since = False, None, 0
            w.conf = {"mac": mac(len(cls._all))}
            w.addr = ("0.0.0.0",) * 4
            cls._all.append(w)
        return cls._all[index]

    def active(self, up=None):
        if up is None:
            return self.up
        self.up = bool(up)
        if not up:
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
            raise OSError("STA must be active")
        self.target = (ssid, key)
        self.since = time.ticks_ms()

    def disconnect(self):
        if not self.up:
            raise OSError("Wifi Not Started")  # as the ESP32 does
        self.target = None

    def status(self):
        if self.target is None:
            return STAT_IDLE
        if time.ticks_diff(time.ticks_ms(), self.since) < 300 or wifi_down():
            return STAT_CONNECTING  # associating, or retrying while the AP is gone
        aps = CONFIG["wifi"]
        ssid, key = self.target
        if ssid not in aps:
            return STAT_NO_AP_FOUND
        return STAT_GOT_IP if aps[ssid] == key else STAT_WRONG_PASSWORD

    def isconnected(self):
        return self.status() == STAT_GOT_IP


# ---- machine

PLATFORM = CHIP
RESET_EXIT = 3  # the host restarts the VM on this exit status, flash intact


def reset():
    print("board: reset")
    sys.exit(RESET_EXIT)


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, n, mode=-1, pull=None):
        self.n = n
        self.mode = mode
        self.level = 1 if pull == Pin.PULL_UP else 0

    def value(self, v=None):
        if v is None:
            if self.mode == Pin.IN and self.n == CONFIG["button_pin"]:
                # the button pulls its pin to ground while pressed
                return 0 if button_down() else 1
            return self.level
        global led_level, led_changes
        self.level = 1 if v else 0
        if self.n == CONFIG["led_pin"] and self.level != led_level:
            led_level = self.level
            led_changes += 1


class RTC:
    # RTC memory survives a reset, not a power cut: `esplink board run` clears the file
    _FILE = ".vboard/rtc"

    def memory(self, data=None):
        if data is None:
            try:
                with open(self._FILE, "rb") as f:
                    return f.read()
            except OSError:
                return b""
        with open(self._FILE, "wb") as f:
            f.write(data)


class WDT:
    def __init__(self, timeout=5000):
        if PLATFORM == "esp8266" and timeout != 5000:
            raise ValueError("WDT timeout")  # as the ESP8266 port does
        self.timeout = timeout

    def feed(self):
        pass


# what the stand-in and the runner hold: a chip's C modules would not take it from the heap
gc.collect()
heap_base = heap_peak = gc.mem_alloc()
