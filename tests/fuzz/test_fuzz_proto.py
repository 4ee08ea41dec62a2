"""Property-based fuzzing of the cloud's frame reader (firmware/espcloud/proto.py Frames)
under CPython: any bytes in reads of any size never raise, never grow its 2 KB buffer,
and give only frames (dicts) or the replies to dropped ones; frames the cloud writes
(json.dumps and a newline, or none) come out as they went in, whatever the reads."""
import json

from hypothesis import given
from hypothesis import strategies as st

import drive
import props
from espcloud import proto


@props.budget(2500)
@given(st.binary(max_size=400))
def test_any_bytes(data):
    drive.cloud_stream(data)


@props.budget(1500)
@given(st.randoms(use_true_random=False))
def test_mutated_streams(rng):
    props.check("proto", props.fuzz_input(rng, "proto"))


@props.budget(500)
@given(st.randoms(use_true_random=False), st.integers(0, 255))
def test_frames_read_back(rng, read_size):
    frames = [props.json_object(rng) for _ in range(rng.randint(1, 4))]
    frames = [f for f in frames if props.reference(json.dumps(f).encode())[0]]
    stream = b"".join(json.dumps(f).encode() + rng.choice((b"\n", b"\r\n", b"")) for f in frames)
    got, f = drive.cloud_stream(bytes((read_size,)) + stream)
    want = [x for x in frames if len(json.dumps(x)) + 2 < proto.MAX_FRAME]
    if len(want) == len(frames):
        assert f.dropped == 0 and len(got) == len(frames) and all(props.same(a, b) for a, b in zip(got, frames))
