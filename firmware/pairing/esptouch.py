# Sans-IO ESP-Touch v1 (SmartConfig) decoder: datagram lengths in, Wi-Fi credentials
# out (spec: shared/spec/esptouch.md). No sockets here, so the same code is tested
# under CPython and on the MicroPython VM. A Decoder is about 600 bytes of heap on the
# 32-bit VM (four buffers, a few small ints); feed() keeps nothing until the broadcast
# is complete. Both layouts senders use: with the AP's BSSID after the ssid (Espressif's
# apps) and without it (older apps, EsptouchPython without a BSSID).
from micropython import const

_HI = const(40)  # 40..295: a half byte plus a half CRC
_SEQ = const(296)  # 296..423: the index of the byte
_GUIDE = const(515)  # the guide run is 515, 514, 513, 512


def _crc_byte(crc, b):
    # bitwise, no 256-byte table: RAM is scarcer than time at 8 ms per datagram
    crc ^= b
    for _ in range(8):
        crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def crc8(data, crc=0):
    """CRC-8/MAXIM (poly 0x8C reflected, init 0, no final xor); pass crc to continue."""
    for b in data:
        crc = _crc_byte(crc, b)
    return crc


def ack(total_len, mac, ip):
    """The 11 bytes the phone waits for: total length, station MAC, IPv4 (dotted)."""
    parts = ip.split(".")
    if len(mac) != 6 or len(parts) != 4:
        raise ValueError("mac or ip")
    return bytes([total_len & 0xFF]) + bytes(mac) + bytes([int(p) for p in parts])


class Decoder:
    """feed(length) every datagram length; True once decoded, then read ssid,
    password, bssid (bytes, or None from a sender that leaves it out), phone_ip
    (str) and total_len."""

    def __init__(self, offset=0):
        self.offset = offset  # sniffed frames are longer than the UDP payload
        self.done = False
        self._vals = bytearray(128)
        self._known = bytearray(16)  # bitmap over _vals
        # half codes (a sequence length and one of its halves, the other lost), per
        # index: high halves at 0..127, low halves at 128..255; two from different
        # rounds make the byte when its CRC agrees
        self._halves = bytearray(256)
        self._half_known = bytearray(32)
        self._repeats = 0  # copies heard again since 0..totalLen-1 checked out without a BSSID
        self._last = -1  # previous raw length
        self._run = 0  # how many lengths so far went down by exactly 1
        self._a = self._b = 0  # the two lengths before this one, minus offset

    def feed(self, length):
        if self.done:
            return True
        if length == self._last:
            # a repeat (802.11 retry, duplicated datagram) carries nothing new; the
            # triplet ranges are disjoint, so collapsing repeats loses no data code
            return False
        if length != self._last - 1:
            self._run = 1
        elif self._run < 4:
            self._run += 1
        self._last = length
        if self._run == 4 and length + 3 >= _GUIDE and length + 3 - _GUIDE != self.offset:
            # the window needs no reset: a run going down by 1 never holds a data code.
            # What was decoded under another offset is noise read as codes: a length
            # read too long can pass as an index past the end, which would wait forever
            # for the rest of a BSSID the sender never sends
            self.offset = length + 3 - _GUIDE
            self._forget()
        n = length - self.offset
        a, b = self._a, self._b
        self._a, self._b = b, n
        # a data code is three consecutive lengths; noise anywhere in them breaks it
        if _SEQ <= b < _SEQ + 128:
            i = b - _SEQ
            hi = _HI <= a < _SEQ
            lo = _HI <= n < _SEQ
            if hi and lo:
                a -= _HI
                n -= _HI
                v = (a & 0x0F) << 4 | (n & 0x0F)
                if (a & 0xF0) | (n >> 4) == _crc_byte(_crc_byte(0, v), i):
                    self._store(i, v)
            elif hi:
                self._half(i, a - _HI)
            elif lo:
                self._half(128 + i, n - _HI)
        return self.done

    def _forget(self):
        for buf in (self._known, self._half_known):
            for i in range(len(buf)):
                buf[i] = 0
        self._repeats = 0

    def _half(self, at, part):
        halves, known = self._halves, self._half_known
        halves[at] = part
        known[at >> 3] |= 1 << (at & 7)
        i = at & 127
        other = at ^ 128
        if not known[other >> 3] & (1 << (other & 7)):
            return
        hi, lo = halves[i], halves[128 + i]
        v = (hi & 0x0F) << 4 | (lo & 0x0F)
        if (hi & 0xF0) | (lo >> 4) == _crc_byte(_crc_byte(0, v), i):
            self._store(i, v)

    def _store(self, i, v):
        vals, known, bit = self._vals, self._known, 1 << (i & 7)
        if known[i >> 3] & bit and vals[i] == v:
            # every later cycle repeats the same values: skip the checks, but count a
            # round heard again without a BSSID: then the sender leaves it out
            if self._repeats:
                self._repeats += 1
                if self._repeats > vals[0]:
                    self._finish(False)
            return
        vals[i] = v
        known[i >> 3] |= bit
        self._check()

    def _check(self):
        # cheap header checks first; a wrong header waits for a good copy of index 0/1
        vals, known = self._vals, self._known
        total, pwd = vals[0], vals[1]
        if total < 9 or total > 128 or pwd > total - 9 or not 1 <= total - 9 - pwd <= 32:
            return
        x = 0
        for i in range(total):
            if not known[i >> 3] & (1 << (i & 7)):
                return
            x ^= vals[i]
        ssid_crc = 0
        for i in range(9 + pwd, total):
            ssid_crc = _crc_byte(ssid_crc, vals[i])
        if x or ssid_crc != vals[2]:
            self._repeats = 0
            return  # a bad byte slipped in: a later cycle overwrites it
        bssid = 0
        for i in range(total, min(total + 6, 128)):
            if known[i >> 3] & (1 << (i & 7)):
                bssid += 1
        if bssid == 6:
            crc = 0
            for i in range(total, total + 6):
                crc = _crc_byte(crc, vals[i])
            if crc == vals[3]:
                self._finish(True)
        elif not bssid:
            if not self._repeats:
                self._repeats = 1  # complete but for a BSSID: wait a round for one
        else:
            self._repeats = 0  # a BSSID is coming

    def _finish(self, with_bssid):
        vals, total, pwd = self._vals, self._vals[0], self._vals[1]
        self.total_len = total
        self.password = bytes(vals[9 : 9 + pwd])
        self.ssid = bytes(vals[9 + pwd : total])
        self.bssid = bytes(vals[total : total + 6]) if with_bssid else None
        self.phone_ip = "%d.%d.%d.%d" % (vals[5], vals[6], vals[7], vals[8])
        self.done = True
