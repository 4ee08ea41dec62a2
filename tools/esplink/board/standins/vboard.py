# The virtual board's common parts (runs on the VM): its configuration, the control
# socket the host presses the button through, the line to the host's watchdogs, and
# what the stand-ins for `machine`, `network`, `socket` and `tls` share. Every byte
# the stand-ins hold is charged to the VM's heap, which a chip's C modules would not
# take: heap_base (measured once the stand-ins are loaded) is left out of the figures.
import gc
import json
import os
import select
import socket
import time

CONFIG = json.loads(os.getenv("ESPLINK_VBOARD"))
CHIP = CONFIG["chip"]
LOOPBACK = "127.0.0.1"
CRASH_EXIT = 4  # the host boots the board again, as a chip reboots after a crash

_PROBE = CONFIG["heap_probe"]
_pressed_until = 0
_wifi_down_until = 0
_last_poll = None
led_level = 0
led_changes = 0
loop_gap = 0  # the longest time between two button polls (20 ms apart): the event loop's worst stall
udp_dropped = 0  # datagrams the ESP8266 model dropped (one pending per socket)
hidden = 0  # heap bytes held by the VM's own TLS engine where the chip's is modelled (vtls)
heap_base = heap_peak = 0


def _udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = socket.getaddrinfo(LOOPBACK, port)[0][-1]
    return s, addr


_ctl, _ctl_addr = _udp(CONFIG["control_port"])
_ctl.bind(_ctl_addr)  # the host picks the port: the unix port's sockets have no getsockname()
_poller = select.poll()
_poller.register(_ctl, select.POLLIN)
_monitor, _monitor_addr = _udp(CONFIG["monitor_port"])


def tell(msg):
    """A word to the host's watchdogs (process.Watchdogs): b"f" feeds."""
    _monitor.sendto(msg, _monitor_addr)


def hang(why):
    """The chip is stuck in C and feeds nothing: its software watchdog resets it."""
    print("board: hung:", why)
    tell(b"hang " + why.encode())
    while True:
        time.sleep_ms(1000)


def _libc_exit():
    import ffi

    return ffi.open("libc.so.6").func("v", "_exit", "i")


_exit = _libc_exit()


def exit(code):
    """At once, as a chip resets: no exception that a try or a scheduled callback's
    guard could catch, no finally blocks."""
    _exit(code)


def crash(why):
    """What crashes the chip (no exception to catch there): reboot."""
    print("board: crash:", why)
    exit(CRASH_EXIT)


def refused(host, port):
    print("board: refused %s:%s (the virtual board reaches only 127.0.0.1)" % (host, port))


# what runs in the background on a chip (timers, radio): polled with the button, every 20 ms
background = []


def button_down():
    global _last_poll, loop_gap
    now = time.ticks_ms()
    if _last_poll is not None:
        loop_gap = max(loop_gap, time.ticks_diff(now, _last_poll))
    if _PROBE:
        sample_heap()
    poll_control()
    for step in background:
        step()
    _last_poll = time.ticks_ms()  # the probe's own time is not the firmware's stall
    return time.ticks_diff(_pressed_until, _last_poll) > 0


def sample_heap():
    # live heap after a collection: what the program really holds at this instant
    global heap_peak
    gc.collect()
    heap_peak = max(heap_peak, gc.mem_alloc() - hidden)


def sample_peak():
    """A stand-in at a peak no button poll sees (inside a blocking call)."""
    if _PROBE:
        sample_heap()


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
    elif words[0] == "heapmap":  # the GC heap, block by block, into the board's output
        import micropython

        gc.collect()
        micropython.mem_info(1)
        micropython.qstr_info()
    elif words[0] == "stall":  # a firmware bug: Python spinning without yielding to the event loop
        until = time.ticks_add(time.ticks_ms(), int(words[1]))
        _ctl.sendto(b"{}", addr)
        while time.ticks_diff(until, time.ticks_ms()) > 0:
            pass
        return
    elif words[0] == "reset":  # the board's EN/RESET button
        _ctl.sendto(b"{}", addr)
        import vmachine

        vmachine.reset()
    lit = led_level ^ (1 if CONFIG["led_active_low"] else 0)
    reply = ('{"led": %d, "led_changes": %d, "heap_base": %d, "heap_peak": %d, "loop_gap": %d, '
             '"udp_dropped": %d}' % (lit, led_changes, heap_base, heap_peak, loop_gap, udp_dropped))
    _ctl.sendto(reply.encode(), addr)


def settle():
    """Once every stand-in is loaded: what they hold is the base the figures leave out."""
    global heap_base, heap_peak
    gc.collect()
    heap_base = heap_peak = gc.mem_alloc()
