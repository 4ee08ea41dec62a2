# Stand-in for the ESP32 `smartconfig` C module (platform.md), for `esplink board run
# --smartconfig`. The chip's library sniffs ESP-Touch off the air and acks by itself
# once the station has an address; here the "air" is the board's loopback touch port,
# and the firmware's own decoder plays the library's (charged to the firmware's heap:
# the only part that is). The acks go out in the background, as the library's task.
import socket
import time

import vboard

TYPE_ESPTOUCH = 0
TYPE_AIRKISS = 1
TYPE_ESPTOUCH_AIRKISS = 2
TYPE_ESPTOUCH_V2 = 3

_sock = None
_decoder = None
_kind = TYPE_ESPTOUCH_AIRKISS
_acks_left = 0
_last_ack = 0


def type(t=None):  # noqa: A001 - the C module's name
    global _kind
    if t is None:
        return _kind
    _kind = t


def timeout(s=None):
    return 15 if s is None else None


def start():
    global _sock, _decoder, _acks_left
    from pairing.esptouch import Decoder

    stop()
    _decoder = Decoder()
    _acks_left = 30
    _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _sock.bind(socket.getaddrinfo("127.0.0.1", vboard.CONFIG["touch_port"])[0][-1])
    _sock.setblocking(False)
    vboard.background.append(_step)


def stop():
    global _sock
    if _sock:
        _sock.close()
        _sock = None
    if _step in vboard.background:
        vboard.background.remove(_step)


def done():
    _step()
    return bool(_decoder and _decoder.done)


def info():
    d = _decoder
    return d.ssid.decode(), d.password.decode(), d.bssid, TYPE_ESPTOUCH


def _step():
    global _acks_left, _last_ack
    if not _sock:
        return
    d = _decoder
    if not d.done:
        while True:
            try:
                n = len(_sock.recv(600))
            except OSError:
                return
            if d.feed(n):
                break
        return
    sta = vboard.WLAN(vboard.STA_IF)
    now = time.ticks_ms()
    if _acks_left and sta.isconnected() and time.ticks_diff(now, _last_ack) >= 100:
        from pairing.esptouch import ack

        addr = socket.getaddrinfo(d.phone_ip, vboard.CONFIG["ack_port"])[0][-1]
        _sock.sendto(ack(d.total_len, sta.config("mac"), sta.ifconfig()[0]), addr)
        _acks_left -= 1
        _last_ack = now
