"""The chips' watchdogs on the model: the host keeps them, since the VM has no timer
interrupt. ESP8266: once a machine.WDT exists, its software watchdog resets the chip
at the second 1.6 s tick after the last feed. ESP32: the task watchdog's timeout."""
import re

# Runs twice: the first boot marks the flash and blocks; the watchdog resets it; the
# second boot finds the mark and ends the board.
ONCE = """
import os, sys
try:
    os.stat("bitten")
    print("second boot")
    sys.exit(0)
except OSError:
    pass
open("bitten", "w").close()
"""


def since_last_feed(log):
    return int(re.search(r"; (\d+) ms since the last feed\)", log)[1])


def test_the_esp8266_soft_watchdog_bites_1_6_to_3_2_s_after_the_last_feed(run_script):
    log = run_script(ONCE + """
import machine, time
w = machine.WDT()
for _ in range(4):  # fed: it lives
    time.sleep_ms(500)
    w.feed()
print("fed for 2 s")
time.sleep(4)  # a firmware that blocks 4 s
print("survived")
""").finish()
    assert "fed for 2 s" in log and "survived" not in log
    assert re.search(r"^board: software watchdog reset \(not fed;", log, re.M)
    assert 1550 <= since_last_feed(log) <= 3600  # 1.6-3.2 s, and the host's 20 ms polling under load
    assert log.index("board: software watchdog") < log.index("second boot")


def test_the_esp8266_timeout_is_5000_only(run_script):
    log = run_script("""
import machine
try:
    machine.WDT(timeout=8000)
except ValueError:
    print("ValueError")
""").finish()
    assert "ValueError" in log


def test_without_a_wdt_blocking_does_not_bite_the_esp8266(run_script):
    # the port's event loop feeds the SDK's watchdog in every blocking wait
    log = run_script("""
import time
time.sleep(4)
print("survived")
""").finish()
    assert "survived" in log and "watchdog" not in log


def test_a_slow_dns_lookup_bites_a_badly_fed_esp8266_wdt(run_script):
    # getaddrinfo() blocks (modlwip.c:1785-1800) and feeds nothing once a WDT exists
    log = run_script(ONCE + """
import machine, socket
w = machine.WDT()
w.feed()
print("resolving")
socket.getaddrinfo("cloud.test", 8443)
print("resolved")
""", hosts={"cloud.test": "127.0.0.1"}, dns_delay_ms=3500).finish()
    assert "resolving" in log and "resolved" not in log
    assert "board: software watchdog reset" in log and "second boot" in log


def test_the_esp32_task_watchdog_bites_at_its_timeout(run_script):
    log = run_script(ONCE + """
import machine, time
w = machine.WDT(timeout=2000)
w.feed()
time.sleep_ms(1500)
w.feed()
print("fed")
time.sleep(3)
print("survived")
""", chip="esp32").finish()
    assert "fed" in log and "survived" not in log
    assert "board: task watchdog reset (not fed;" in log
    assert 1950 <= since_last_feed(log) <= 2800


def test_a_hang_in_c_is_reset_by_the_esp8266_sdk_watchdog_without_a_wdt(run_script):
    log = run_script(ONCE + """
import vboard
vboard.hang("a test")
""").finish()
    assert "board: hung: a test" in log
    assert "board: software watchdog reset (hung: a test;" in log and "second boot" in log


def test_virtual_timer_callbacks_run_while_python_spins(run_script):
    # as the chip's timer interrupt schedules them: between bytecodes
    log = run_script("""
import machine, time
ticks = []
t = machine.Timer(-1)
t.init(mode=machine.Timer.PERIODIC, period=100, callback=lambda _: ticks.append(1))
end = time.ticks_add(time.ticks_ms(), 600)
while time.ticks_diff(end, time.ticks_ms()) > 0:
    pass
t.deinit()
print("ticks", len(ticks))
""").finish()
    assert 3 <= int(re.search(r"ticks (\d+)", log)[1]) <= 8
