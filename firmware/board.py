# The button and the LED: a debounced, polled button and blink patterns a person
# can tell apart, each driven by its own asyncio task.
import asyncio
import time

from micropython import const

import hw

_POLL_MS = const(20)
_STABLE_POLLS = const(3)  # 60 ms of the same reading
_LONG_PRESS_MS = const(10000)

# (on, off, on, off, ...) in ms; () is steady on
PATTERNS = {
    "off": None,
    "pairing": (100, 100),  # fast blink
    "joining": (500, 500),  # slow blink
    "on": (),
    "failed": (100, 100, 100, 700),  # double blink
    "touch": (100, 100, 100, 100, 100, 700),  # triple blink: listening for a phone's ESP-Touch
    "offline": (100, 1900),  # on Wi-Fi, cloud not (yet) reached: a short flash every 2 s
    "safe": (1000, 200, 200, 600),  # long, short: pairing in safe mode (boots kept crashing)
}


class Led:
    def __init__(self, pin, active_low):
        self.pin = hw.led(pin)
        self.invert = 1 if active_low else 0
        self.pattern = "off"
        self.safe = False  # safe mode: its pairing shows a pattern of its own
        # a flag run() polls, not an asyncio.Event: that would load asyncio's event module
        # (~0.5 KB of heap) for one waiter
        self.changed = False
        self.set(0)

    def set(self, on):
        self.pin.value(on ^ self.invert)

    def show(self, pattern):
        if self.safe and pattern == "pairing":
            pattern = "safe"
        if pattern != self.pattern:
            self.pattern = pattern
            print("led:", pattern)
            self.changed = True

    async def run(self):
        while True:
            self.changed = False
            steps = PATTERNS[self.pattern]
            if not steps:
                self.set(0 if steps is None else 1)
                while not self.changed:
                    await asyncio.sleep_ms(_POLL_MS)
                continue
            for i in range(len(steps)):  # no iterator object per cycle
                if self.changed:
                    break
                self.set(1 - i % 2)
                await asyncio.sleep_ms(steps[i])


class Button:
    """Calls on_short() when released before _LONG_PRESS_MS, on_long() once when
    held that long (without waiting for the release)."""

    def __init__(self, pin, active_low, on_short, on_long):
        self.pin = hw.button(pin, active_low)
        self.pressed_level = 0 if active_low else 1
        self.on_short = on_short
        self.on_long = on_long

    async def run(self):
        stable = False  # debounced "is pressed"
        raw_prev = False
        same = 0
        down_at = 0
        fired_long = False
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            raw = self.pin.value() == self.pressed_level
            same = min(same + 1, _STABLE_POLLS) if raw == raw_prev else 0
            raw_prev = raw
            if same >= _STABLE_POLLS and raw != stable:
                stable = raw
                if stable:
                    down_at = time.ticks_ms()
                    fired_long = False
                elif not fired_long:
                    self.on_short()
            if stable and not fired_long and time.ticks_diff(time.ticks_ms(), down_at) >= _LONG_PRESS_MS:
                fired_long = True
                self.on_long()
