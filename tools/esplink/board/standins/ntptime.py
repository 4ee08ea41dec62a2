# Stand-in for `ntptime`, which both ports freeze into their firmware (micropython-lib,
# bundle-networking): the same interface and behaviour -- one SNTP query to `host`,
# blocking for at most `timeout` seconds, the RTC set to UTC -- with the board's port
# 123 mapped to the loopback port the host chose.
import socket
import struct
import time as _clock

import vboard

host = "pool.ntp.org"
timeout = 1
_NTP_DELTA = 3155673600  # seconds from 1900-01-01 (NTP) to 2000-01-01 (the ports' epoch)
_MIN_NTP = 3913056000  # 2024-01-01: an era-1 timestamp below this has wrapped (after 2036)


def time():
    query = bytearray(48)
    query[0] = 0x1B  # version 3, client
    port = vboard.CONFIG["ntp_port"]
    addr = socket.getaddrinfo(host, port)[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(query, addr)
        msg = s.recv(48)
    finally:
        s.close()
    val = struct.unpack("!I", msg[40:44])[0]  # the transmit timestamp's seconds
    if val < _MIN_NTP:
        val += 0x100000000
    return val - _NTP_DELTA


def settime():
    import vmachine

    tm = _clock.gmtime(time() + 946684800)  # the VM's epoch is 1970
    vmachine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
