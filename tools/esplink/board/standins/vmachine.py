# Stand-in for the chip's `machine` (runs on the VM): pins, RTC (memory and clock),
# the watchdog as each chip has it, virtual timers, reset.
import time

import micropython
import vboard

PLATFORM = vboard.CHIP
RESET_EXIT = 3  # the host boots the board again on this exit status, flash intact


def unique_id():
    seed = vboard.CONFIG["seed"]
    uid = bytes((seed >> 8 & 0xFF, seed & 0xFF, 0xC0, 0xDE, 0x00, 0x01))
    return uid if PLATFORM == "esp32" else uid[:4]


def reset():
    if vboard.CONFIG["heap_probe"]:
        # the whole boot's peak: a world's peak can come after the last look the host took
        vboard.sample_heap()
        print("heap: peak %d of this boot" % (vboard.heap_peak - vboard.heap_base))
    print("board: reset")
    vboard.exit(RESET_EXIT)


class Pin:
    """A chip's pins are static objects: Pin(n, ...) configures and hands back the same
    one every time (ports/esp8266/machine_pin.c:67,320-335; ports/esp32/machine_pin.c:
    98-107,231), so it takes none of the firmware's heap. Here the wiring's pins are made
    before the firmware runs."""

    IN = 0
    OUT = 1
    PULL_UP = 2

    def __new__(cls, n, mode=-1, pull=None):
        pin = _pins.get(n)
        if pin is None:  # a pin outside the wiring: made now
            pin = _pins[n] = object.__new__(cls)
            pin.n = n
        pin.mode = mode
        pin.level = 1 if pull == Pin.PULL_UP else 0
        return pin

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


_pins = {}
for _n in (vboard.CONFIG["button_pin"], vboard.CONFIG["led_pin"]):
    Pin(_n)


# The board's clock: both ports start it at 2000-01-01 00:00:00 (the ESP32's mbedTLS
# checks certificate dates against it: ports/esp32/main.c:90-97) until RTC.datetime()
# sets it (ntptime.settime() does). Seconds since 2000-01-01; a boot starts it again.
_clock_base = 0
_clock_at = time.ticks_ms()


def clock():
    return _clock_base + time.ticks_diff(time.ticks_ms(), _clock_at) // 1000


def _days(y, m, d):
    # days from 2000-01-01 to y-m-d (proleptic Gregorian)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 730425


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

    def datetime(self, t=None):
        global _clock_base, _clock_at
        if t is None:
            s = clock()
            tm = time.gmtime(s + 946684800)  # the VM's epoch is 1970
            return (tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0)
        _clock_base = _days(t[0], t[1], t[2]) * 86400 + t[4] * 3600 + t[5] * 60 + t[6]
        _clock_at = time.ticks_ms()


class WDT:
    """The host keeps the rule (process.Watchdogs): the VM has no timer interrupt."""

    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError  # both ports have one
        if PLATFORM == "esp8266":
            if timeout != 5000:
                raise ValueError  # as the ESP8266 port does
            # machine_wdt.c:39-57: from now on only feed() feeds the SDK's software watchdog
            vboard.tell(b"wdt soft")
        else:
            vboard.tell(b"wdt task %d" % timeout)  # the ESP32's task watchdog

    def feed(self):
        vboard.tell(b"f")


class Timer:
    """Virtual timers: the chip's timer interrupt schedules the callback, which runs
    between bytecodes or inside a blocking wait (micropython.schedule). Here a thread
    plays the interrupt."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.gen = 0
        if kw:
            self.init(**kw)

    def init(self, mode=PERIODIC, period=1000, callback=None):  # the firmware's subset: no freq, tick_hz
        import _thread

        self.gen += 1
        _thread.start_new_thread(self._run, (self.gen, mode, period, callback))

    def deinit(self):
        self.gen += 1

    def _run(self, gen, mode, period, callback):
        while gen == self.gen:
            time.sleep_ms(period)
            if gen != self.gen:
                break
            try:
                micropython.schedule(callback, self)
            except RuntimeError:
                pass  # the queue is full: the chip drops it too
            if mode == Timer.ONE_SHOT:
                break
