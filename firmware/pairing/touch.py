# Touch mode: the phone broadcasts the Wi-Fi credentials with ESP-Touch v1; we join
# that network, ack to the phone by UDP, then serve the same GET /device and POST /ap
# on the LAN. The receiver is a UDP socket on port 7001 while on a network already:
# it sees the phone's broadcast only from that LAN. Stock MicroPython has no
# promiscuous mode and no release has a `smartconfig` module, so a board that has
# never been paired pairs by AP mode.
import asyncio
import select
import socket

from micropython import const

import hw
import settings
from pairing.esptouch import Decoder, ack
from pairing.mode import join
from pairing.server import Server

_TOUCH_PORT = const(7001)
_ACK_PORT = const(18266)
_LISTEN_MS = const(120000)  # for a broadcast: a phone app sends for 45 s, people are slower
_EXCHANGE_MS = const(60000)  # after the ack, for the phone's GET /device + POST /ap
_ACKS = const(30)  # one every 100 ms
_STEP_MS = const(200)


async def run(app):
    """The POST /ap of the phone that touched us, or None: when it never came (the
    touched network is saved by then), or with app.switch set, back to AP mode, on a
    press or when there is no receiver, no broadcast in time, or the touched network
    cannot be joined."""
    s = app.s
    # the receiver hears only the LAN of the saved network
    if not (s["ssid"] and await join(app, s["ssid"], s["password"])):
        print("touch: unavailable (no network to listen on)")
        app.led.show("failed")  # the press was heard; this device cannot do it here
        await asyncio.sleep_ms(2000)
        return _back(app)
    print("touch: listening on the LAN")
    app.led.show("touch")
    got = await _listen(app)
    if not got:
        print("touch: switched" if app.switch else "touch: no broadcast")
        return _back(app)
    ssid, password, phone_ip, total_len = got
    print("touch: got", ssid)
    if not await join(app, ssid, password):
        app.failed = True
        return _back(app)  # nothing saved
    settings.apply_pairing(s, {"ssid": ssid, "password": password})
    settings.save(s)  # a phone that only does ESP-Touch stops at the ack: keep what works
    print("touch: saved")
    acking = asyncio.create_task(_ack(phone_ip, ack(total_len, hw.mac(), hw.sta().ifconfig()[0])))
    pairing = await _exchange(app)  # the phone starts it on the first ack
    await acking  # all 30 acks, even to a phone that already heard one
    return pairing


def _back(app):
    app.switch = True  # to AP mode
    return None


async def _listen(app):
    decoder = Decoder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(socket.getaddrinfo(*hw.listen_addr(_TOUCH_PORT))[0][-1])
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        waited = 0
        while not _drain(poller, sock, decoder):
            # datagrams come every 8 ms and the ESP8266 keeps one (modlwip.c:441): a
            # datagram is lost when two arrive within one pass; the phone repeats them
            await asyncio.sleep_ms(5)
            waited += 5
            if app.switch or waited >= _LISTEN_MS:
                return None
    finally:
        sock.close()
    try:
        return decoder.ssid.decode(), decoder.password.decode(), decoder.phone_ip, decoder.total_len
    except UnicodeError:
        print("touch: credentials are not UTF-8")
        return None


def _drain(poller, sock, decoder):
    """Feed every waiting datagram's length; True once decoded."""
    while True:
        for _ in poller.ipoll(0):  # one entry per ready socket, not per datagram
            break
        else:
            return False
        # only the length matters, and readinto() would wait to fill the buffer from
        # several datagrams: recv() them one at a time
        if decoder.feed(len(sock.recv(600))):
            return True


async def _ack(phone_ip, data):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        to = socket.getaddrinfo(*hw.peer_addr(phone_ip, _ACK_PORT))[0][-1]
        for _ in range(_ACKS):
            try:
                sock.sendto(data, to)
            except OSError:
                pass  # one lost ack in 30 is nothing; the phone needs one
            await asyncio.sleep_ms(100)
    finally:
        sock.close()
    print("touch: acked", phone_ip)


async def _exchange(app):
    server = Server(app.s)
    try:
        await server.start(*hw.listen_addr(app.s["http_port"]))
        print("touch: http on", hw.sta().ifconfig()[0])
        app.led.show("pairing")
        waited = 0
        while not server.pairing:
            await asyncio.sleep_ms(_STEP_MS)
            waited += _STEP_MS
            if app.switch:
                return None
            if waited >= _EXCHANGE_MS:
                return None
        await asyncio.sleep_ms(300)  # let {"error":0} leave
    finally:
        await server.stop()
    return server.pairing
