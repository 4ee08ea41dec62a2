# The pairing world: AP mode (the phone joins our soft-AP) or touch mode (the phone
# broadcasts with ESP-Touch), a short press switching between them, until a phone
# hands over a network that works; then a reset into the network world. Imported
# only while pairing.
import asyncio

from micropython import const

import hw
import settings
import wifi
from pairing.server import Server

_FAILED_SHOW_MS = const(10000)  # how long the failed pattern shows before pairing blinks again


async def run(app):
    s = app.s
    wifi.leave()
    in_touch = False
    while True:
        app.switch = False  # a press, or touch mode giving up, sets it: to the other mode
        if in_touch:
            from pairing import touch  # only once asked for: AP mode's heap stays small

            pairing = await touch.run(app)
        else:
            pairing = await _ap_mode(app)
        if not app.switch:
            break
        in_touch = not in_touch
    if not pairing:
        print("pairing: window closed")
        hw.reset()  # back to the saved network
        return  # not reached: hw.reset() does not return
    if not (wifi.connected() and pairing["ssid"] == s["ssid"] and pairing["password"] == s["password"]):
        if not await join(app, pairing["ssid"], pairing["password"]):
            app.failed = True
            return app.mode  # pair again; nothing was saved, the old settings stand
    settings.apply_pairing(s, pairing)
    settings.save(s)
    print("pairing: saved")
    hw.reset()  # into the network world


async def join(app, ssid, password):
    """Join with the joining pattern showing; True when connected."""
    app.led.show("joining")
    result = await wifi.join(ssid, password, app.s["join_timeout"])
    print("wifi:", result)
    return result == wifi.CONNECTED


async def _ap_mode(app):
    """The POST /ap a phone made on our soft-AP; None when the window closed or
    app.switch was set."""
    s = app.s
    ssid = s["ap_ssid"] or "ITEAD-" + s["deviceid"]
    _ap_up(ssid, s["ap_password"], s["ap_ip"])
    print("ap: up", ssid, s["ap_ip"])
    server = Server(s)
    try:
        await server.start(*hw.listen_addr(s["http_port"]))
        pairing = await _wait(app, server)
        if pairing:
            await asyncio.sleep_ms(300)  # let {"error":0} leave before the AP goes
    finally:
        await server.stop()
        wifi.ap_down()
        print("ap: down")
    return pairing


async def _wait(app, server):
    # a window only when there is a network to go back to
    window_ms = app.s["pair_window"] * 1000 if app.s["ssid"] else 0
    app.led.show("failed" if app.failed else "pairing")
    waited = 0
    while not server.pairing:
        await asyncio.sleep_ms(200)
        waited += 200
        if app.switch:
            return None
        if waited == _FAILED_SHOW_MS:
            app.led.show("pairing")
        if window_ms and waited >= window_ms:
            return None
    return server.pairing


def _ap_up(ssid, password, ip):
    ap = hw.ap()
    ap.active(True)
    if password:
        ap.config(ssid=ssid, key=password, security=hw.network.AUTH_WPA2_PSK)
    else:
        ap.config(ssid=ssid, security=hw.network.AUTH_OPEN)
    ap.ifconfig((ip, "255.255.255.0", ip, ip))
