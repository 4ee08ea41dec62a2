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
import select
import socket

from micropython import const

import hw
import wifi
from pairing import dns, handlers, portal
from pairing.server import CLOSED, SWITCH, Server, readable

_FAILED_SHOW_MS = const(10000)  # the failed pattern after a failed attempt, then fast blink
_DNS_PORT = const(53)
_NETWORKS = const(12)  # the portal lists at most this many


async def run(app):
    wifi.leave()
    notice = None  # the last attempt's outcome: the LED's failed pattern, the portal's notice
    in_touch = False
    while True:
        if in_touch:
            from pairing import touch  # only once asked for: AP mode's heap stays small

            got = await touch.run(app, commit)
        else:
            got = await _ap_mode(app, notice)
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


# AP mode


async def _ap_mode(app, notice):
    """AP mode: the accepted POST /ap (a dict), SWITCH or CLOSED."""
    s = app.s
    networks = _scan()  # before the AP is up: on the ESP8266 a scan takes its channel away
    ssid = portal.ap_ssid(s)
    _ap_up(ssid, s["ap_password"], s["ap_ip"])
    print("ap: up", ssid, s["ap_ip"])
    server = Server(handlers.Context(s, hw.url_host(s["ap_ip"], s["http_port"]), networks, notice))
    dns_task = asyncio.create_task(_dns(s["ap_ip"]))
    led_task = asyncio.create_task(_show_failed(app, notice))
    try:
        await server.start(*hw.listen_addr(s["http_port"]))
        # a window only when there is a network to go back to
        return await server.until_paired(app, s["pair_window"] * 1000 if s["ssid"] else 0)
    finally:
        dns_task.cancel()
        led_task.cancel()
        await server.stop()
        wifi.ap_down()
        print("ap: down")


async def _show_failed(app, notice):
    if notice:  # the last attempt failed: say so for a while
        app.led.show("failed")
        await asyncio.sleep_ms(_FAILED_SHOW_MS)
    app.led.show("pairing")


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


async def _dns(ip):
    address = bytes(int(part) for part in ip.split("."))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(socket.getaddrinfo(*hw.listen_addr(_DNS_PORT))[0][-1])
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while True:
            while readable(poller):
                try:
                    query, peer = sock.recvfrom(512)
                    reply = dns.answer(query, address)
                    if reply:
                        sock.sendto(reply, peer)
                    # not kept in this frame until the next query (~0.2 KB)
                    query = peer = reply = None
                except OSError:
                    pass  # a phone that left; the next query is another
            # a phone asks A and AAAA at once, and the ESP8266 keeps one datagram: poll often
            await asyncio.sleep_ms(10)
    finally:
        sock.close()
