# Stand-in for MicroPython's `machine` on the virtual board (runs on the MicroPython VM).
import sys

import vboard

PLATFORM = vboard.CHIP
RESET_EXIT = 3  # the host restarts the VM on this exit status, flash intact


def unique_id():
    return vboard.unique_id()


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
            if self.mode == Pin.IN and self.n == vboard.CONFIG["button_pin"]:
                # the button pulls its pin to ground while pressed
                return 0 if vboard.button_down() else 1
            return self.level
        self.level = 1 if v else 0
        if self.n == vboard.CONFIG["led_pin"] and self.level != vboard.led_level:
            vboard.led_level = self.level
            vboard.led_changes += 1
        return None


class WDT:
    def __init__(self, timeout=5000):
        if PLATFORM == "esp8266" and timeout != 5000:
            raise ValueError("WDT timeout")  # as the ESP8266 port does
        self.timeout = timeout

    def feed(self):
        pass
