# The one door to the hardware. On a chip these are MicroPython's own `network` and
# `machine`; the virtual board puts its stand-ins in their place before boot.
import sys

import machine
import network

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


def watchdog():
    # the ESP8266 accepts no other timeout
    return machine.WDT(timeout=5000)


def reset(next_boot=b""):
    """Reboot; `next_boot` reaches the next boot through RTC memory, which a reset
    keeps and a power cut clears."""
    machine.RTC().memory(next_boot)
    machine.reset()


def boot_request():
    """What the previous boot asked of this one (b"" if nothing), asked once."""
    rtc = machine.RTC()
    request = rtc.memory()
    if request:
        rtc.memory(b"")
    return request


def listen_addr(port):
    # the virtual board maps the device's ports onto 127.0.0.1
    remap = getattr(network, "loopback_port", None)
    return ("127.0.0.1", remap(port)) if remap else ("0.0.0.0", port)


def peer_addr(ip, port):
    remap = getattr(network, "loopback_port", None)
    return (ip, remap(port)) if remap else (ip, port)


def smartconfig():
    """The ESP32 `smartconfig` C module when this firmware build has one, else None."""
    try:
        import smartconfig
    except ImportError:
        return None
    return smartconfig
