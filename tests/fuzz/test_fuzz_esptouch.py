"""Property-based fuzzing of the ESP-Touch decoder (firmware/pairing/esptouch.py) under
CPython: any run of datagram lengths is taken without an exception and without growing
its buffers; the phone's encoder (tools/esplink/touch.py) -> datagrams dropped or doubled
at random -> the decoder gives back exactly what was sent, or nothing yet."""
import struct

from hypothesis import given
from hypothesis import strategies as st

import drive
import props
from esplink.touch import GUIDE, data_lengths
from pairing.esptouch import Decoder

ssids = st.text(min_size=1, max_size=32).filter(lambda s: len(s.encode()) <= 32)
passwords = st.text(max_size=64).filter(lambda s: len(s.encode()) <= 64)
bssids = st.none() | st.binary(min_size=6, max_size=6).map(lambda b: ":".join("%02x" % x for x in b))
ips = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)


@props.budget(1500)
@given(st.lists(st.integers(0, 1600), max_size=400))
def test_any_lengths(lengths):
    drive.esptouch_lengths(b"".join(struct.pack(">H", n) for n in lengths))


@props.budget(600)
@given(st.randoms(use_true_random=False))
def test_mutated_broadcasts(rng):
    props.check("esptouch", props.fuzz_input(rng, "esptouch"))


@props.budget(250)
@given(ssids, passwords, bssids, ips, st.booleans(), st.sampled_from([0, 28, 40]), st.randoms(use_true_random=False))
def test_what_the_phone_sends_is_decoded(ssid, password, bssid, ip, omit, offset, rng):
    data = data_lengths(ssid, password, bssid, ip, omit_bssid=omit)
    d = Decoder()
    for round_ in range(4):  # two rounds losing and doubling 10 % each, then clean ones
        lossy = round_ < 2
        for n in list(GUIDE) * 2 + data:
            if lossy and rng.random() < 0.1:
                continue
            copies = 2 if lossy and rng.random() < 0.1 else 1
            if any(d.feed(n + offset) for _ in range(copies)):
                break
        if d.done:
            break
    assert d.done, "not decoded in 2 lossy and 2 clean rounds"
    assert d.ssid == ssid.encode() and d.password == password.encode() and d.phone_ip == ip
    want_bssid = None if omit else bytes.fromhex((bssid or "00:00:00:00:00:00").replace(":", ""))
    assert d.bssid == want_bssid
