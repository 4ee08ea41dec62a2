# Joining a network, with both ports' status codes folded into one set of outcomes.
import asyncio
import time

from micropython import const

import hw

CONNECTED = "connected"
WRONG_PASSWORD = "wrong password"
NO_AP = "no AP"
FAILED = "failed"
TIMEOUT = "timeout"


def outcome(status, net=hw.network):
    """The outcome a WLAN.status() value means, or None while still trying."""
    if status == net.STAT_GOT_IP:
        return CONNECTED
    if status == net.STAT_WRONG_PASSWORD:
        return WRONG_PASSWORD
    if status == net.STAT_NO_AP_FOUND:
        return NO_AP
    if status == net.STAT_IDLE or status == net.STAT_CONNECTING:  # no tuple per poll
        return None
    # ESP8266 CONNECT_FAIL, or one of the ESP32's raw ESP-IDF reasons
    return FAILED


_SETTLE_MS = const(1500)  # a failure this early may still be the previous attempt's


async def join(ssid, password, timeout_s):
    sta = hw.sta()
    sta.active(True)
    if not await _connect(sta, ssid, password):
        return FAILED
    t0 = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(200)
        waited = time.ticks_diff(time.ticks_ms(), t0)
        result = outcome(sta.status())
        if result == CONNECTED or (result and waited > _SETTLE_MS):
            break
        if waited > timeout_s * 1000:
            result = TIMEOUT
            break
    if result != CONNECTED:
        sta.disconnect()  # or it keeps retrying with the bad credentials
    return result


async def _connect(sta, ssid, password):
    # The ESP32's driver retries a requested connection on its own; connect() during
    # one of its attempts raises OSError("Wifi Internal Error"), and status() keeps
    # the last attempt's failure until the next attempt ends (network_wlan.c:301-391).
    # disconnect() ends both: its "leaving" event makes status() IDLE.
    for _ in range(2):
        if sta.status() != hw.network.STAT_IDLE:  # nothing to end on a station at rest
            try:
                sta.disconnect()
            except OSError:  # the ESP8266 says "Cannot disconnect from AP" if the SDK refuses
                pass
            for _ in range(25):  # the driver's event comes from its own task
                if outcome(sta.status()) is None:
                    break
                await asyncio.sleep_ms(20)
        try:
            sta.connect(ssid, password)
            return True
        except OSError as e:
            print("wifi: connect refused:", e)
            await asyncio.sleep_ms(500)
    return False


def leave():
    sta = hw.sta()
    if sta.active():  # the ESP32 raises OSError on a station that is off
        sta.disconnect()


def connected():
    return hw.sta().isconnected()


def ap_down():
    hw.ap().active(False)
