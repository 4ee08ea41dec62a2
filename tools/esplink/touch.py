"""The phone's side of touch-mode pairing: `esplink pair touch` broadcasts the Wi-Fi
credentials as ESP-Touch v1 (esptouch.md) -- in the lengths of UDP datagrams, which a
device in sniffer mode can read off the air -- waits for the device's 11-byte ack, then
does the AP-mode exchange (GET /device, POST /ap) with the address the ack names."""
import functools
import ipaddress
import itertools
import math
import operator
import re
import select
import socket
import time
from typing import NamedTuple

from esplink import CommandError, secret
from esplink.phone import new_token, pair_ap, report, split_hostport

DEFAULT_TARGET = ("255.255.255.255", 7001)
ACK_PORT = 18266
GUIDE = (515, 514, 513, 512)
UNKNOWN_BSSID = "00:00:00:00:00:00"
# the device starts its HTTP server once it has sent the ack (pairing.md, steps 3 and 4)
HTTP_START_S = 10.0


class Ack(NamedTuple):
    ip: str  # the device's address on the Wi-Fi it joined
    mac: str  # its station MAC, aa:bb:cc:dd:ee:ff


def crc8(data):
    """CRC-8/MAXIM: poly 0x8C reflected, init 0, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def encode(ssid, password, bssid, phone_ip, omit_bssid=False):
    """The bytes the device collects, by index (esptouch.md's table): totalLen + 6 of them,
    the bssid last. bssid None means unknown (00:00:00:00:00:00). omit_bssid: the
    layout of senders that leave it out (older apps): totalLen bytes, index 3 zero."""
    ssid_bytes, password_bytes = ssid.encode(), password.encode()
    if not 1 <= len(ssid_bytes) <= 32:
        raise CommandError(f"the ssid must be 1..32 bytes of UTF-8, not {len(ssid_bytes)}")
    if len(password_bytes) > 64:
        raise CommandError(f"the password must be at most 64 bytes of UTF-8, not {len(password_bytes)}")
    # so len(ssid) + len(password) <= 96 and every index <= 110: under the limit of 127
    bssid_bytes = b"" if omit_bssid else parse_mac(bssid or UNKNOWN_BSSID)
    try:
        ip_bytes = ipaddress.IPv4Address(phone_ip).packed
    except ValueError:
        raise CommandError(f"the phone ip {phone_ip!r} is not an IPv4 address")
    total_len = 9 + len(password_bytes) + len(ssid_bytes)
    data = bytearray((total_len, len(password_bytes), crc8(ssid_bytes), 0 if omit_bssid else crc8(bssid_bytes), 0))
    data += ip_bytes + password_bytes + ssid_bytes
    data[4] = functools.reduce(operator.xor, data)  # so the XOR over indices 0..totalLen-1 is 0
    return bytes(data + bssid_bytes)


def parse_mac(text):
    if not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", text):
        raise CommandError(f"the bssid {text!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
    return bytes.fromhex(text.replace(":", ""))


def data_code(value, index):
    """The three datagram lengths that carry one byte at one index."""
    crc = crc8(bytes((value, index)))
    return (40 + ((crc & 0xF0) | value >> 4),
            40 + 256 + index,
            40 + ((crc & 0x0F) << 4 | value & 0x0F))


def send_order(total_len, omit_bssid=False):
    """Indices in the order they are sent: the header (0..4), then ip, password and ssid,
    with the six bssid indices inserted before ip[0] and then after every 3 data codes."""
    order = list(range(total_len))
    for k in range(0 if omit_bssid else 6):
        order.insert(5 + 4 * k, total_len + k)  # past the end, insert() appends
    return order


def data_lengths(ssid, password, bssid, phone_ip, omit_bssid=False):
    """One round of the data codes, as datagram lengths in send order."""
    data = encode(ssid, password, bssid, phone_ip, omit_bssid)
    return [length for index in send_order(data[0], omit_bssid) for length in data_code(data[index], index)]


def schedule(ssid, password, bssid, phone_ip, interval_ms=8, guide_ms=2000, data_ms=4000, omit_bssid=False):
    """Yields (t_ms, length) forever: one datagram every interval_ms, in cycles of guide_ms
    of the guide code then data_ms of the data codes. The data round resumes where the
    previous cycle left it, so every index gets sent even when data_ms is short.
    Pure: it neither sleeps nor sends. Validates its input at the call, not at next()."""
    data = data_lengths(ssid, password, bssid, phone_ip, omit_bssid)
    if not (interval_ms > 0 and guide_ms > 0 and data_ms > 0):
        raise CommandError("interval_ms, guide_ms and data_ms must be positive")
    return _timeline(data, interval_ms, math.ceil(guide_ms / interval_ms), math.ceil(data_ms / interval_ms))


def _timeline(data, interval_ms, guide_count, data_count):
    data_run = itertools.cycle(data)
    sent = 0
    while True:
        for length in itertools.chain(itertools.islice(itertools.cycle(GUIDE), guide_count),
                                      itertools.islice(data_run, data_count)):
            yield sent * interval_ms, length
            sent += 1


def parse_ack(datagram, total_len):
    """The Ack in an 11-byte datagram [totalLen, MAC x6, IPv4 x4], or None if it is not one."""
    if len(datagram) != 11 or datagram[0] != total_len & 0xFF:
        return None
    return Ack(str(ipaddress.IPv4Address(bytes(datagram[7:]))), ":".join(f"{b:02x}" for b in datagram[1:7]))


def pair_touch(ssid, password, bssid=None, target=DEFAULT_TARGET, phone_ip=None, ack_port=ACK_PORT,
               device_port=80, server=None, token=None, send_s=45, listen_s=15, interval_ms=8, log=None,
               omit_bssid=False):
    """Broadcasts for send_s, listens for the ack listen_s more, then pairs as in AP mode.
    phone_ip defaults to this host's address on the route to the target. log(line) hears
    progress. Returns (Ack, identity dict, reply dict). Raises CommandError on any failure."""
    log = log or (lambda line: None)
    host, port = target
    try:
        target_ip = socket.gethostbyname(host)
    except OSError:
        raise CommandError(f"cannot resolve the target {host!r}")
    broadcast = _is_broadcast(target_ip, port)
    phone_ip = phone_ip or _local_ip(target_ip, port, broadcast)
    if phone_ip is None:
        raise CommandError(f"cannot tell this host's IPv4 address towards {target_ip}: pass --phone-ip")
    total_len = encode(ssid, password, bssid, phone_ip, omit_bssid)[0]
    timeline = schedule(ssid, password, bssid, phone_ip, interval_ms, omit_bssid=omit_bssid)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        if broadcast:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            listener.bind((phone_ip, ack_port))
        except OSError as e:
            raise CommandError(f"cannot listen for the ack on {phone_ip}:{ack_port}: {e.strerror or e}")
        listener.setblocking(False)
        log(f"touch: sending {ssid!r} to {target_ip}:{port} for {send_s:g} s, ack expected on {phone_ip}:{ack_port}")
        ack = _send_until_ack(sender, listener, (target_ip, port), timeline, total_len, send_s, listen_s)
    if ack is None:
        raise CommandError(
            f"no ack from a device within {send_s + listen_s:g} s. ESP-Touch needs this host on the "
            f"2.4 GHz network the device can hear (or a device already on this LAN listening on UDP port "
            f"{port}), the device in touch mode, and UDP {ack_port} reaching {phone_ip} (firewall?)")
    log(f"ack: device {ack.ip} mac {ack.mac}")
    _wait_for_http(ack.ip, device_port, HTTP_START_S)
    identity, reply = pair_ap(f"{ack.ip}:{device_port}", ssid, password, server, token)
    return ack, identity, reply


def _is_broadcast(ip, port):
    if ip == "255.255.255.255":
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((ip, port))
        except PermissionError:  # Linux refuses a (subnet) broadcast address without SO_BROADCAST
            return True
        except OSError:
            pass
    return False


def _local_ip(ip, port, broadcast):
    """This host's address on the route to ip: a UDP connect picks the route and sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        if broadcast:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            probe.connect((ip, port))
            local = probe.getsockname()[0]
        except OSError:
            return None
    return None if local == "0.0.0.0" else local


def _send_until_ack(sender, listener, address, timeline, total_len, send_s, listen_s):
    start = time.monotonic()
    for t_ms, length in timeline:
        if t_ms >= send_s * 1000:
            break
        # each datagram is due at its time from the start, so a late one does not delay the rest
        ack = _receive_ack(listener, total_len, until=start + t_ms / 1000)
        if ack:
            return ack
        try:
            sender.sendto(b"1" * length, address)
        except OSError as e:
            raise CommandError(f"cannot send to {address[0]}:{address[1]}: {e.strerror or e}")
    return _receive_ack(listener, total_len, until=start + send_s + listen_s)


def _receive_ack(listener, total_len, until):
    """The first valid ack before `until` (monotonic), or None; anything else is dropped."""
    while select.select([listener], [], [], max(0.0, until - time.monotonic()))[0]:
        try:
            datagram = listener.recv(64)  # a longer datagram arrives cut to 64 bytes: still not 11
        except BlockingIOError:
            continue
        ack = parse_ack(datagram, total_len)
        if ack:
            return ack
    return None


def _wait_for_http(host, port, within_s):
    """Until the device accepts TCP connections; if it never does, pair_ap says so."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.2)


def cmd_touch(args):
    token = args.token or new_token()
    ack, identity, _ = pair_touch(
        args.ssid, secret.value(args, "password"), args.bssid, split_hostport(args.target, DEFAULT_TARGET[1]),
        args.phone_ip, args.ack_port, args.device_port, args.server, token,
        send_s=args.timeout, listen_s=args.listen, log=lambda line: print(line, flush=True),
        omit_bssid=args.no_bssid)
    report(identity, args.ssid, None if args.token else token)
    return 0
