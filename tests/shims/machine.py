"""CPython stand-in for MicroPython's `machine` module, so firmware imports under pytest."""


def unique_id():
    return b"\x0a\x1b\x2c\x3d"  # 4 bytes, like an ESP8266


def reset():
    raise SystemExit("machine.reset()")


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, id, mode=-1, pull=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


class RTC:
    _memory = b""  # survives "resets" within one test process

    def memory(self, data=None):
        if data is None:
            return RTC._memory
        RTC._memory = bytes(data)
