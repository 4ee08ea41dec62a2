# The pairing world: AP mode (the phone joins our soft-AP and speaks the seed's
# exchange, or a person uses the captive portal) or touch mode (the phone broadcasts
# with ESP-Touch), a short press switching between them, until a phone hands over a
# network that works. The one place a pairing is committed: validated (by the
# handlers), joined, saved, then a reset into the network world. Imported only while
# pairing.
#
# AP mode is here too: the soft-AP ITEAD-<deviceid>, a DNS that sends every name to it
# (so a phone opens the captive portal), and the pairing server, until a POST /ap is
# accepted, a press asks for touch mode, or the window closes. (One module, not two:
# each module costs the heap its own dictionary and tables.)
import asyncio
import socket
import sys

from micropython import const

import board
import hw
import wifi
from pairing.server import CLOSED, SWITCH

# AP mode's modules (in pairing): imported by _ap_mode, and out of the heap again before a
# join and a save (the pairing world's other peak). One string: a tuple would keep a
# string object per name in the heap all through AP mode.
_SERVING = "server handlers portal http dns"

_FAILED_SHOW_MS = const(10000)  # the failed pattern after a failed attempt, then fast blink
_DNS_PORT = const(53)
_NETWORKS = const(12)  # the portal lists at most this many


async def run(app):
    print("mode: pair")
    wifi.leave()
    notice = None  # the last attempt's outcome: the LED's failed pattern, the portal's notice
    in_touch = False
    while True:
        if in_touch:
            from pairing import touch  # only once asked for: AP mode's heap stays small

            got = await touch.run(app, commit)
        else:
            got = await _ap_mode(app, notice)
            _unload(_SERVING.split())
        if got == SWITCH:
            in_touch = not in_touch
            continue
        if got == CLOSED:
            print("pairing: window closed")
            hw.reset()  # back to the saved network
        if isinstance(got, dict):
            notice = await commit(app, got)  # resets when it works
        else:
            notice = got  # touch mode gave up, and why
        in_touch = False


async def commit(app, pairing, reset=True):
    """Join the paired network (unless on it already), save, reset; None when saved
    (with reset=False), else what went wrong (the old settings stand)."""
    import settings  # only now: it would sit in the heap all through the pairing

    s = app.s
    if not (wifi.connected() and pairing["ssid"] == s["ssid"] and pairing["password"] == s["password"]):
        result = await app.connect(pairing["ssid"], pairing["password"])
        if result != wifi.CONNECTED:
            return 'could not join "%s": %s' % (pairing["ssid"], result)
    settings.apply_pairing(s, pairing)
    settings.save(s)
    print("pairing: saved")
    if reset:
        hw.reset()  # into the network world
    return None


def _unload(names):
    # a submodule is held by sys.modules and by its package's attribute; the ESP8266's
    # build has no delattr (ports/esp8266/mpconfigport.h:26), a module its __dict__
    import pairing

    for name in names:
        sys.modules.pop("pairing." + name, None)
        pairing.__dict__.pop(name, None)


# AP mode


async def _ap_mode(app, notice):
    """AP mode: the accepted POST /ap (a dict), SWITCH or CLOSED."""
    from pairing import portal
    from pairing.server import Server

    s = app.s
    networks = _scan()  # before the AP is up: on the ESP8266 a scan takes its channel away
    ssid = portal.ap_ssid(s)
    _ap_up(ssid, s["ap_password"], s["ap_ip"])
    print("ap: up", ssid, s["ap_ip"])
    server = Server(s, hw.url_host(s["ap_ip"], s["http_port"]), networks, notice)
    led_task = asyncio.create_task(_show_failed(app, notice))
    try:
        await server.start(*hw.listen_addr(s["http_port"]), _dns(s["ap_ip"]))
        # a window only when there is a network to go back to
        return await server.until_paired(app, s["pair_window"] * 1000 if s["ssid"] else 0)
    finally:
        led_task.cancel()
        await server.stop()
        wifi.ap_down()
        print("ap: down")


async def _show_failed(app, notice):
    if notice:  # the last attempt failed: say so for a while
        board.show("failed")
        await asyncio.sleep_ms(_FAILED_SHOW_MS)
    board.show("pairing")


def _ap_up(ssid, password, ip):
    ap = hw.ap()
    ap.active(True)
    if password:
        ap.config(ssid=ssid, key=password, security=hw.network.AUTH_WPA2_PSK)
    else:
        ap.config(ssid=ssid, security=hw.network.AUTH_OPEN)
    ap.ifconfig((ip, "255.255.255.0", ip, ip))


def _scan():
    """The networks in reach, (ssid, rssi), strongest first, each name once."""
    sta = hw.sta()
    sta.active(True)
    try:
        found = sta.scan()  # blocks a second or two
    except OSError as e:
        print("ap: scan failed:", e)
        return ()
    best = {}
    for entry in found:
        try:
            name = entry[0].decode()
        except UnicodeError:
            continue  # a name no phone could send back as text
        if name and best.get(name, -999) < entry[3]:
            best[name] = entry[3]
    del found
    networks = sorted(best.items(), key=lambda item: -item[1])
    print("ap: %d networks in reach" % len(networks))
    return networks[:_NETWORKS]


def _dns(ip):
    """The captive portal's DNS for the server's loop: a socket on UDP 53 and what
    answers a query there (every name is ip)."""
    from pairing import dns

    address = bytes(int(part) for part in ip.split("."))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(socket.getaddrinfo(*hw.listen_addr(_DNS_PORT))[0][-1])
    except OSError:
        sock.close()
        raise
    return sock, lambda query: dns.answer(query, address)
