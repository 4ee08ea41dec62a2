# hw's boot count for safe mode and the pairing request, sharing RTC memory.
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py), with the
# `machine` stand-in in tests/shims (RTC memory survives its "resets").
import hw
import machine
from check import raises


def rtc(data=None):
    if data is None:
        return machine.RTC().memory()
    machine.RTC().memory(data)


def reboot(request=b""):
    # hw.reset() ends with machine.reset(): the stand-in raises SystemExit there
    raises(SystemExit, hw.reset, request)


def test_a_power_on_counts_one_boot_and_asks_nothing():
    rtc(b"")
    assert hw.boot_state() == (b"", 1)
    assert rtc() == b"\xa5\x01"


def test_an_older_firmware_s_request_is_not_read_as_a_count():
    rtc(b"pair")  # what RTC memory held before the count was there
    assert hw.boot_state() == (b"", 1)


def test_boots_count_until_a_stable_state():
    rtc(b"")
    for n in (1, 2, 3, 4):
        assert hw.boot_state() == (b"", n)
        reboot()  # a crash's or a watchdog's reset: RTC memory already holds the count
    hw.boot_state()
    hw.stable()
    assert rtc() == b"\xa5\x00"
    hw.stable()  # again: nothing to write
    reboot()
    assert hw.boot_state() == (b"", 1)


def test_the_pairing_request_rides_beside_the_count_and_is_taken_once():
    rtc(b"")
    assert hw.boot_state() == (b"", 1)
    reboot(b"pair")
    assert rtc() == b"\xa5\x01pair"
    assert hw.boot_state() == (b"pair", 2)
    assert hw.boot_state() == (b"", 3)
    hw.stable()
    reboot(b"pair")
    assert hw.boot_state() == (b"pair", 1)


def test_the_count_stops_at_255():
    rtc(b"\xa5\xfe")
    assert hw.boot_state() == (b"", 255)
    assert hw.boot_state() == (b"", 255)
    rtc(b"")
