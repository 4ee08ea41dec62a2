# The virtual board's shared state (runs on the MicroPython VM): its configuration,
# and the control socket through which the host presses the button and reads the LED.
import json
import os
import select
import socket
import time

CONFIG = json.loads(os.getenv("ESPLINK_VBOARD"))
CHIP = CONFIG["chip"]

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


def button_down():
    poll_control()
    return time.ticks_diff(_pressed_until, time.ticks_ms()) > 0


def wifi_down():
    return time.ticks_diff(_wifi_down_until, time.ticks_ms()) > 0


def poll_control():
    global _pressed_until, _wifi_down_until
    for _ in _poller.ipoll(0):
        msg, addr = _ctl.recvfrom(64)
        words = msg.decode().split()
        if words[0] == "press":
            _pressed_until = time.ticks_add(time.ticks_ms(), int(words[1]))
        elif words[0] == "wifi-down":
            _wifi_down_until = time.ticks_add(time.ticks_ms(), int(words[1]))
        lit = led_level ^ (1 if CONFIG["led_active_low"] else 0)
        reply = '{"led": %d, "led_changes": %d}' % (lit, led_changes)
        _ctl.sendto(reply.encode(), addr)
