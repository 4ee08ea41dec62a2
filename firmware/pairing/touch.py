# Touch mode: the phone broadcasts the Wi-Fi credentials with ESP-Touch v1; we join
# that network, ack to the phone by UDP, then serve the same GET /device and POST /ap
# on the LAN. The receiver is a UDP socket on port 7001 while on a network already:
# it sees the phone's broadcast only from that LAN. Stock MicroPython has no
# promiscuous mode and no release has a `smartconfig` module, so a board that has
# never been paired pairs by AP mode.
import asyncio
import select
import socket
import time

from micropython import const

import board
import hw
import wifi
from pairing import handlers
from pairing.esptouch import Decoder, ack
from pairing.server import SWITCH, Server, readable

_TOUCH_PORT = const(7001)
_ACK_PORT = const(18266)
_LISTEN_MS = const(120000)  # for a broadcast: a phone app sends for 45 s, people are slower
_EXCHANGE_MS = const(60000)  # after the ack, for the phone's GET /device + POST /ap
_ACKS = const(30)  # one every 100 ms


async def run(app, commit):
    """What mode.run acts on: the POST /ap made on the LAN (a dict), server.CLOSED
    when none came (the touched network is saved by then), SWITCH on a press, or why
    touch mode gave up (a str: back to AP mode). `commit` is mode.commit."""
    s = app.s
    # the receiver hears only the LAN of the saved network
    if not (s["ssid"] and await app.connect(s["ssid"], s["password"]) == wifi.CONNECTED):
        print("touch: unavailable (no network to listen on)")
        board.show("failed")  # the press was heard; this device cannot do it here
        await asyncio.sleep_ms(2000)
        return "touch mode needs the device on a network first"
    print("touch: listening on the LAN")
    board.show("touch")
    got = await _listen(app)
    if not isinstance(got, tuple):
        return got
    ssid, password, phone_ip, total_len = got
    print("touch: got", ssid)
    failure = await commit(app, {"ssid": ssid, "password": password}, False)
    if failure:
        return failure  # nothing saved
    # a phone that only does ESP-Touch stops at the ack: the touched network is saved
    acking = asyncio.create_task(_ack(phone_ip, ack(total_len, hw.mac(), hw.sta().ifconfig()[0])))
    server = Server(s)
    try:
        await server.start(*hw.listen_addr(s["http_port"]))
        print("touch: http on", hw.sta().ifconfig()[0])
        board.show("pairing")
        got = await server.until_paired(app, _EXCHANGE_MS)  # the phone starts it on the first ack
    finally:
        await server.stop()
    await acking  # all 30 acks, even to a phone that already heard one
    return got


async def _listen(app):
    """(ssid, password, phone ip, total length), SWITCH, or why nothing came (a str)."""
    decoder = Decoder()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    heard = 0
    try:
        sock.bind(socket.getaddrinfo(*hw.listen_addr(_TOUCH_PORT))[0][-1])
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        t0 = time.ticks_ms()
        while True:
            while readable(poller):
                # only the length matters, and readinto() would wait to fill the buffer
                # from several datagrams: recv() them one at a time
                heard += 1
                if decoder.feed(len(sock.recv(600))):
                    return _credentials(decoder)
            if app.take_press():
                print("touch: switched")
                return SWITCH
            if time.ticks_diff(time.ticks_ms(), t0) >= _LISTEN_MS:
                break
            # datagrams come every 8 ms and the ESP8266 keeps one (modlwip.c:441): a
            # datagram is lost when two arrive within one pass; the phone repeats them
            await asyncio.sleep_ms(5)
    finally:
        sock.close()
    if not heard:
        print("touch: no broadcast")
        return "no ESP-Touch broadcast was heard"
    print("touch: heard %d, incomplete" % heard)
    return "an ESP-Touch broadcast was heard (%d datagrams) but not all of it" % heard


def _credentials(decoder):
    try:
        ssid, password = decoder.ssid.decode(), decoder.password.decode()
    except UnicodeError:
        print("touch: credentials are not UTF-8")
        return "the touched network's name or password is not UTF-8"
    if not handlers.password_ok(password):  # the rule POST /ap applies
        print("touch: bad password")
        return "the touched password is not a Wi-Fi password (8 to 63 bytes)"
    return ssid, password, decoder.phone_ip, decoder.total_len



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
