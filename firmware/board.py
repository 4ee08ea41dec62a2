# The button and the LED, and the beat that drives them: one asyncio task wakes every
# 20 ms, polls the button (debounced), steps the LED's blink pattern and calls the
# app's once-a-second work (the watchdog's feed). Module state and functions, not
# classes and a task each: there is one button and one LED, and every class, instance
# and task is heap the pairing world cannot spare.
import asyncio
import time

from micropython import const

import hw

_POLL_MS = const(20)
_STABLE_POLLS = const(3)  # 60 ms of the same reading
_LONG_PRESS_MS = const(10000)
_SECOND_POLLS = const(50)

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

pattern = "off"  # what the LED shows (show() sets it)
safe = False  # safe mode: its pairing shows a pattern of its own


def show(name):
    global pattern
    if safe and name == "pairing":
        name = "safe"
    if name != pattern:
        pattern = name
        print("led:", name)


async def run(s, on_short, on_long, each_second):
    """The beat, forever. on_short() when the button is released before _LONG_PRESS_MS,
    on_long() once when it has been held that long (without waiting for the release)."""
    led = hw.led(s["led_pin"])
    off = 1 if s["led_active_low"] else 0  # the pin level that darkens the LED
    led.value(off)
    button = hw.button(s["button_pin"], s["button_active_low"])
    pressed_level = 0 if s["button_active_low"] else 1
    stable = raw_prev = fired_long = False  # stable: the debounced "is pressed"
    same = down_at = polls = 0
    shown = steps = None  # the pattern being stepped through, and its steps
    step = step_end = 0
    while True:
        await asyncio.sleep_ms(_POLL_MS)
        now = time.ticks_ms()
        polls += 1
        if polls == _SECOND_POLLS:
            polls = 0
            each_second()
        # the LED: a new pattern starts at once; a blink steps when its time is up
        if shown != pattern:
            shown = pattern
            steps = PATTERNS[shown]
            step = -1
            step_end = now
            if not steps:
                led.value(off ^ (0 if steps is None else 1))
        if steps and time.ticks_diff(now, step_end) >= 0:
            step = (step + 1) % len(steps)
            led.value(off ^ (1 - step % 2))  # even steps on
            step_end = time.ticks_add(now, steps[step])
        # the button
        raw = button.value() == pressed_level
        same = min(same + 1, _STABLE_POLLS) if raw == raw_prev else 0
        raw_prev = raw
        if same >= _STABLE_POLLS and raw != stable:
            stable = raw
            if stable:
                down_at = now
                fired_long = False
            elif not fired_long:
                on_short()
        if stable and not fired_long and time.ticks_diff(now, down_at) >= _LONG_PRESS_MS:
            fired_long = True
            on_long()
