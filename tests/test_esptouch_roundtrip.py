"""ESP-Touch round trip: the phone's encoder (esplink.touch) -> a lossy channel -> the
device's decoder (firmware/pairing/esptouch.py), under CPython and on the 32-bit
MicroPython VM with the ESP8266's 38 KB heap (bench/touch_vm.py feeds the streams there).

Every random choice comes from a seeded random.Random: a failure names its seed and
case, and ESPTOUCH_SEED=<n> reruns the file with another seed."""
import itertools
import os
import random
import re
import struct
import subprocess
from pathlib import Path

import pytest

from esplink import vm
from esplink.touch import GUIDE, data_code, data_lengths, encode, schedule, send_order
from pairing.esptouch import Decoder, crc8

ROOT = Path(__file__).resolve().parent.parent
VM_SCRIPT = ROOT / "bench" / "touch_vm.py"
SEED = int(os.environ.get("ESPTOUCH_SEED", "20240611"))
INTERVAL_MS, GUIDE_MS, DATA_MS = 8, 2000, 4000
CYCLE = (GUIDE_MS + DATA_MS) // INTERVAL_MS  # datagrams sent per 6 s cycle
# the decoder must be done before the phone has sent this many datagrams (10 minutes of
# air time). The real phone gives up after 45 s, but the random channels here are far
# worse than a room: 40 % loss, reordering and noise on the largest message took up to
# 58 cycles in 1000 cases of another seed. bench/touch.py has the realistic figures.
BOUND = 100 * CYCLE

# characters by UTF-8 size: ASCII, 2 bytes (Latin, Cyrillic), 3 (CJK, ☕), 4 (emoji)
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
WIDE = "éüßñøЖжЯ中文字網路☕€" + "😀📶🔒🏠"


def text(rng, max_bytes, wide):
    """A random string of at most max_bytes UTF-8 bytes (exactly, if it can be filled)."""
    out, size = [], 0
    while size < max_bytes:
        pool = [c for c in (WIDE if wide and rng.random() < 0.5 else ASCII) if size + len(c.encode()) <= max_bytes]
        if not pool:
            pool = [c for c in ASCII]
        c = rng.choice(pool)
        out.append(c)
        size += len(c.encode())
    return "".join(out)


def credentials(rng, kind):
    """(ssid, password, bssid, phone_ip) of one kind of case."""
    wide = rng.random() < 0.5
    if kind == "max":  # the largest the encoder takes: 32 + 64 bytes
        ssid, password = text(rng, 32, wide), text(rng, 64, wide)
    elif kind == "open":
        ssid, password = text(rng, rng.randint(1, 32), wide), ""
    elif kind == "ssid32":
        ssid, password = text(rng, 32, wide), text(rng, rng.randint(0, 64), wide)
    else:
        ssid, password = text(rng, rng.randint(1, 32), wide), text(rng, rng.randint(0, 64), wide)
    bssid = ":".join("%02x" % rng.randrange(256) for _ in range(6))
    ip = "%d.%d.%d.%d" % tuple(rng.randrange(256) for _ in range(4))
    return ssid, password, bssid, ip


def noise_length(rng):
    """A stray datagram: half of them outside the data ranges, half inside."""
    if rng.random() < 0.5:
        lo, hi = rng.choice(((0, 39), (424, 511), (516, 1500)))
    else:
        lo, hi = rng.choice(((40, 295), (296, 423)))
    return rng.randint(lo, hi)


def channel(timeline, rng, loss=0.0, dup=0.0, reorder=0.0, window=1, noise=0.0):
    """What the device hears of timeline's (t_ms, length): each datagram lost with
    p = loss, else doubled with p = dup; noise datagrams in between with p = noise; and
    with p = reorder one of the `window` datagrams held comes out instead of the oldest."""
    held = []
    for t_ms, length in timeline:
        if rng.random() < noise:
            held.append((t_ms, noise_length(rng)))
        if rng.random() >= loss:
            held.append((t_ms, length))
            if rng.random() < dup:
                held.append((t_ms, length))
        while len(held) >= window:
            yield held.pop(rng.randrange(len(held)) if rng.random() < reorder else 0)


def timeline(data):
    """schedule()'s timeline for a given round of data lengths (which may be corrupted)."""
    guide_count, data_count = GUIDE_MS // INTERVAL_MS, DATA_MS // INTERVAL_MS
    data_run, sent = itertools.cycle(data), 0
    while True:
        for length in itertools.chain(itertools.islice(itertools.cycle(GUIDE), guide_count),
                                      itertools.islice(data_run, data_count)):
            yield sent * INTERVAL_MS, length
            sent += 1


def decode(stream, decoder=None, bound=BOUND * INTERVAL_MS):
    """Feeds (t_ms, length) until done or past bound ms: (decoder, datagrams fed, t_ms)."""
    d = decoder or Decoder()
    fed = 0
    for t_ms, length in stream:
        if t_ms >= bound:
            break
        fed += 1
        if d.feed(length):
            return d, fed, t_ms
    return d, fed, None


def check_result(d, cred, where):
    ssid, password, bssid, ip = cred
    assert d.done, where
    assert d.ssid == ssid.encode() and d.ssid.decode() == ssid, f"{where}: ssid {d.ssid!r}"
    assert d.password == password.encode() and d.password.decode() == password, f"{where}: password {d.password!r}"
    assert d.bssid == bytes.fromhex(bssid.replace(":", "")), f"{where}: bssid {d.bssid.hex()}"
    assert d.phone_ip == ip, f"{where}: phone ip {d.phone_ip}"
    assert d.total_len == encode(*cred)[0] == 9 + len(ssid.encode()) + len(password.encode()), where


# ---- CPython: the encoder's own schedule through random channels

KINDS = ["random"] * 6 + ["open", "ssid32", "max", "max"]
CASES = 120


def case(k):
    rng = random.Random(SEED * 1000 + k)
    cred = credentials(rng, KINDS[k % len(KINDS)])
    impair = dict(loss=rng.uniform(0, 0.4), dup=rng.uniform(0, 0.2), reorder=rng.uniform(0, 0.3),
                  window=rng.randint(1, 4), noise=rng.uniform(0, 0.1))
    return rng, cred, impair


def test_schedule_is_the_timeline():
    # the corrupted streams below rebuild schedule()'s timeline from a data round
    cred = ("TP-LINK_1234", "12345678", "a0:b1:c2:d3:e4:f5", "192.168.1.100")
    got = list(itertools.islice(schedule(*cred), 3 * CYCLE))
    assert got == list(itertools.islice(timeline(data_lengths(*cred)), 3 * CYCLE))


@pytest.mark.parametrize("k", range(CASES))
def test_random_credentials_through_a_bad_channel(k):
    rng, cred, impair = case(k)
    where = f"seed {SEED} case {k}: {cred!r} through {', '.join(f'{n}={v:.2f}' for n, v in impair.items())}"
    d, fed, t_ms = decode(channel(schedule(*cred), rng, **impair))
    assert t_ms is not None, f"{where}: not done after {fed} datagrams ({BOUND} sent)"
    check_result(d, cred, where)


def test_the_kinds_of_cases_are_there():
    creds = [case(k)[1] for k in range(CASES)]
    sizes = [(len(s.encode()), len(p.encode())) for s, p, _, _ in creds]
    assert (32, 64) in sizes and any(p == 0 for _, p in sizes) and any(s == 32 for s, _ in sizes)
    assert any(len(s.encode()) > len(s) for s, _, _, _ in creds)  # multi-byte characters
    assert any(any(len(c.encode()) == 4 for c in s + p) for s, p, _, _ in creds)
    losses = [case(k)[2]["loss"] for k in range(CASES)]
    assert min(losses) < 0.05 and max(losses) > 0.35


@pytest.mark.parametrize("offset", [28, 52])
def test_sniffed_frames_with_a_constant_offset(offset):
    # 802.11 frames seen by a sniffer: every length + a constant; the guide run reveals it
    for k in range(10):
        rng = random.Random(SEED * 1000 + 500 + k)
        cred = credentials(rng, ("random", "max")[k % 2])
        shifted = ((t_ms, n + offset) for t_ms, n in schedule(*cred))
        d, fed, t_ms = decode(channel(shifted, rng, loss=rng.uniform(0, 0.2), dup=rng.uniform(0, 0.1)))
        where = f"seed {SEED} sniffed case {k} offset {offset}: {cred!r}"
        assert t_ms is not None, f"{where}: not done after {fed} datagrams"
        assert d.offset == offset, f"{where}: learned offset {d.offset}"
        check_result(d, cred, where)


def corrupted(data, index, value):
    """A data round whose byte at `index` is `value`, with the right CRC-8 of (value,
    index): every triplet passes the per-byte check."""
    data = bytearray(data)
    data[index] = value
    return [n for i in send_order(len(data) - 6) for n in data_code(data[i], i)]


def test_one_byte_consistently_wrong_never_completes():
    rng = random.Random(SEED * 1000 + 900)
    for kind in ("random", "max", "open"):
        cred = credentials(rng, kind)
        data = encode(*cred)
        # control: the clean broadcast completes well inside the stream tried below
        assert decode(timeline(data_lengths(*cred)))[2] < CYCLE * INTERVAL_MS, cred
        for index in range(len(data)):
            value = (data[index] + rng.randrange(1, 256)) & 0xFF
            lengths = corrupted(data, index, value)
            assert lengths[lengths.index(296 + index) - 1] == data_code(value, index)[0]
            assert (lengths[lengths.index(296 + index) + 1] - 40) >> 4 == crc8(bytes((value, index))) & 0x0F
            d, fed, t_ms = decode(timeline(lengths), bound=3 * CYCLE * INTERVAL_MS)
            where = f"seed {SEED} {cred!r}: index {index} = {value} instead of {data[index]}"
            assert t_ms is None and not d.done, f"{where}: reported done after {fed} datagrams"
            # a clean broadcast after it heals the byte (the latest good value wins)
            d, fed, t_ms = decode(timeline(data_lengths(*cred)), decoder=d)
            assert t_ms is not None, where
            check_result(d, cred, where)


def test_every_wrong_total_length_never_completes():
    # index 0 sets the ranges the checks cover: every other value must fail them too
    rng = random.Random(SEED * 1000 + 901)
    cred = credentials(rng, "random")
    data = encode(*cred)
    for value in range(256):
        if value == data[0]:
            continue
        d = Decoder()
        for n in list(GUIDE) + corrupted(data, 0, value) * 3:
            d.feed(n)
        assert not d.done, f"seed {SEED} {cred!r}: total_len {value} instead of {data[0]}: done"


# ---- the MicroPython VM: the same decoder at the ESP8266's heap

def write_streams(path, streams, chunk=256):
    """bench/touch_vm.py's format: uint32 count, the uint16 lengths, zeros to a whole chunk."""
    with open(path, "wb") as f:
        for lengths in streams:
            pad = -len(lengths) % chunk
            f.write(struct.pack("<I%dH" % (len(lengths) + pad), len(lengths), *lengths, *[0] * pad))


def test_round_trip_on_the_vm(tmp_path):
    rng = random.Random(SEED * 1000 + 950)
    streams, expected = [], []
    for k, kind in enumerate(("random", "random", "open", "ssid32", "max", "max", "random")):
        cred = credentials(rng, kind)
        impair = dict(loss=rng.uniform(0, 0.3), dup=rng.uniform(0, 0.2), noise=rng.uniform(0, 0.1),
                      reorder=0.1, window=2)
        offset = 52 if k == 6 else 0  # the last one is sniffed
        sent = ((t_ms, n + offset) for t_ms, n in schedule(*cred))
        lengths, count, d = [], None, Decoder()
        for t_ms, n in channel(sent, rng, **impair):
            lengths.append(n)
            if count is None and d.feed(n):
                count = len(lengths)
                check_result(d, cred, f"seed {SEED} VM case {k} under CPython")
            if count is not None and len(lengths) >= count + 100 or t_ms >= BOUND * INTERVAL_MS:
                break
        assert count is not None, f"seed {SEED} VM case {k}: CPython never done"
        streams.append(lengths)
        data = encode(*cred)
        expected.append((count, [str(data[0]), cred[3], "x" + data[-6:].hex(),
                                 "x" + cred[1].encode().hex(), "x" + cred[0].encode().hex()]))
    write_streams(tmp_path / "streams.bin", streams)
    argv = vm.micropython() + ["-X", "heapsize=38k", str(VM_SCRIPT), "feed", str(ROOT / "firmware"),
                               str(tmp_path / "streams.bin")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out, out
    lines = re.findall(r"^S (\d+) (done|open) (.*)$", p.stdout, re.M)
    assert len(lines) == len(streams), out
    for (k, state, rest), (count, fields) in zip(lines, expected):
        parts = rest.split()
        where = f"seed {SEED} VM case {k}: {state} {rest}"
        assert state == "done", where
        assert int(parts[0]) == count, f"{where}: fed {parts[0]}, CPython {count}"
        assert parts[4:] == fields, f"{where}: expected {fields}"
