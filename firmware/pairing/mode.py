# The pairing world: the AP and its HTTP server until a phone hands over a network
# that works, then a reset into the network world. Imported only while pairing.
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
    if not pairing:
        print("pairing: window closed")
        hw.reset()  # back to the saved network
    app.led.show("joining")
    result = await wifi.join(pairing["ssid"], pairing["password"], s["join_timeout"])
    print("wifi:", result)
    if result != wifi.CONNECTED:
        app.failed = True
        return app.mode  # pair again; nothing was saved, the old settings stand
    settings.apply_pairing(s, pairing)
    settings.save(s)
    print("pairing: saved")
    hw.reset()  # into the network world


async def _wait(app, server):
    # a window only when there is a network to go back to
    window_ms = app.s["pair_window"] * 1000 if app.s["ssid"] else 0
    app.led.show("failed" if app.failed else "pairing")
    waited = 0
    while not server.pairing:
        await asyncio.sleep_ms(200)
        waited += 200
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
