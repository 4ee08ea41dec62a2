# The one door to the hardware. On a chip these are MicroPython's own `network` and
# `machine`; the virtual board puts its stand-ins in their place before boot.
import sys
import time

import machine
import network
from micropython import const

# the virtual board says which chip it imitates; on a chip sys.platform does
PLATFORM = getattr(machine, "PLATFORM", sys.platform)


def sta():
    return network.WLAN(network.STA_IF)


def ap():
    return network.WLAN(network.AP_IF)


def mac():
    return sta().config("mac")


def unique_id():
    return machine.unique_id()


def button(pin, active_low):
    return machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP if active_low else None)


def led(pin):
    return machine.Pin(pin, machine.Pin.OUT)


def watchdog(limit_ms):
    """A function to call as a feed: the board resets when feeds stop for limit_ms.

    ESP32: the task watchdog (machine.WDT), which also catches a hang in C.
    ESP8266: not machine.WDT. Creating one stops the port's event loop feeding the SDK's
    software watchdog (ports/esp8266/machine_wdt.c:39-57), whose 1.6 s timer then
    resets the chip 1.6-3.2 s after the last feed() (ets_alt_task.c:141-170): a DNS
    lookup or a TLS handshake, which block, would reset a healthy board. Without it
    the SDK's watchdogs stay on (they catch a hang in C), and a virtual timer resets
    the board when the event loop stops feeding (module state and functions, not a
    class: a class costs the heap more, and there is one watchdog)."""
    if PLATFORM != "esp8266":
        return machine.WDT(timeout=limit_ms).feed
    global _limit, _timer
    _limit = limit_ms
    _loop_feed()
    # the timer's callback is scheduled from its interrupt: it runs between bytecodes
    # and inside blocking waits, so a stuck event loop cannot hide it. Held in a global:
    # the ESP8266's timer lives in its object, which must not be collected.
    _timer = machine.Timer(-1)
    _timer.init(mode=machine.Timer.PERIODIC, period=1000, callback=_loop_check)
    return _loop_feed


_limit = _fed = 0
_timer = None


def _loop_feed():
    global _fed
    _fed = time.ticks_ms()


def _loop_check(_):
    if time.ticks_diff(time.ticks_ms(), _fed) > _limit:
        print("watchdog: the event loop stopped; resetting")
        reset()


# RTC memory: [_RTC_TAG, boots since the last stable state, what the previous boot asked
# of this one...]. A reset, a crash and a watchdog keep RTC memory; a power cut clears
# it (both ports check a magic word there: ports/esp8266/machine_rtc.c:57-69, and
# ports/esp32/machine_rtc.c:63-68,93-96 keeps it RTC_NOINIT across resets). The boot count
# for safe mode lives here, not in flash: counting in flash would write it twice on every
# boot of a crash loop, and a power cut ending a count is fine (someone is at the board).
_RTC_TAG = const(0xA5)  # anything else there: a power-on's empty memory, an older firmware's
_boots = 0  # this boot's count (boot_state), 0 once stable; RTC memory always holds it


def reset(next_boot=b""):
    """Reboot; `next_boot` reaches the next boot through RTC memory, which a reset
    keeps and a power cut clears. RTC memory holds the boot count already: a reset
    out of an exhausted heap allocates nothing."""
    if next_boot:
        _remember(next_boot)
    machine.reset()


def boot_state():
    """(What the previous boot asked of this one, b"" if nothing; how many boots in a
    row, this one included, have not reached a stable state). Counts this boot; the
    request is taken once."""
    global _boots
    memory = machine.RTC().memory()
    if len(memory) < 2 or memory[0] != _RTC_TAG:
        memory = bytes((_RTC_TAG, 0))
    _boots = min(memory[1] + 1, 255)
    _remember()
    return memory[2:], _boots


def stable():
    """This boot reached a stable state: the count of boots that did not starts again."""
    global _boots
    if _boots:
        _boots = 0
        _remember()


def _remember(request=b""):
    machine.RTC().memory(bytes((_RTC_TAG, _boots)) + request)


def listen_addr(port):
    # the virtual board maps the device's ports onto 127.0.0.1
    remap = getattr(network, "loopback_port", None)
    return ("127.0.0.1", remap(port)) if remap else ("0.0.0.0", port)


def url_host(ip, port):
    """What a phone's browser puts in the Host header to reach our (ip, port): the
    virtual board is reached on its loopback port."""
    remap = getattr(network, "loopback_port", None)
    if remap:
        return "127.0.0.1:%d" % remap(port)
    return ip if port == 80 else "%s:%d" % (ip, port)


def peer_addr(ip, port):
    remap = getattr(network, "loopback_port", None)
    return (ip, remap(port)) if remap else (ip, port)
