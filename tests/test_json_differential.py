"""jsonobj.loads on CPython and on the 32-bit MicroPython VM, input by input, over the
corpus (tests/firmware/corpus/jsonobj.txt: hand-written edge cases and fuzzing's near
misses and failures): the same dict, or a ValueError on both. And against CPython's own
json.loads: jsonobj takes exactly RFC 8259 plus its documented policy (firmware/jsonobj.py).

Floats: MicroPython's float parser is not correctly rounded; the VM's doubles may be one
unit in the last place off CPython's, and a value a hair below the largest double may
overflow to inf (the chips have single precision floats anyway). Everything else is
compared exactly, types included."""
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from esplink import vm

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests" / "fuzz"))
import jsonobj  # noqa: E402
import props  # noqa: E402

INPUTS = props.read_corpus("jsonobj")
MAX_DOUBLE = sys.float_info.max
ULPS = 1


def _dec(t):
    # vm_replay.enc() undone
    if t is None or t is True or t is False:
        return t
    tag = t[0]
    if tag == "i":
        return int(t[1])
    if tag == "f":
        return struct.unpack("<d", bytes.fromhex(t[1]))[0]
    if tag == "s":
        return bytes.fromhex(t[1]).decode("utf-8", "surrogateescape")  # CESU-8 from the VM stays visible
    if tag == "l":
        return [_dec(x) for x in t[1:]]
    if tag == "d":
        return {_dec(k): _dec(v) for k, v in t[1:]}
    raise AssertionError(f"the VM gave {t!r}")


def cpython(data):
    """("ok", value) or ("refused", None); anything else raised is a failure of its own."""
    try:
        return "ok", jsonobj.loads(data)
    except ValueError:
        return "refused", None


@pytest.fixture(scope="module")
def on_vm():
    argv = vm.micropython() + ["-X", "heapsize=256k", str(ROOT / "tests" / "fuzz" / "vm_replay.py"), "jsonobj",
                               str(props.CORPUS / "jsonobj.txt")]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=300)
    lines = p.stdout.decode("ascii", "backslashreplace").splitlines()
    assert p.returncode == 0 and len(lines) == len(INPUTS), (p.returncode, len(lines), p.stderr.decode()[-2000:])
    out = []
    for line in lines:
        if line == "refused":
            out.append(("refused", None))
        elif line.startswith("ok "):
            out.append(("ok", _dec(json.loads(line[3:]))))
        else:
            out.append(("fail", line))
    return out


def close_floats(a, b):
    """The VM's double `b` for CPython's `a`: an ulp apart at most, or inf for a near-largest."""
    if math.isfinite(a) and math.isinf(b):
        return abs(a) >= MAX_DOUBLE * (1 - 2 ** -50) and math.copysign(1, a) == math.copysign(1, b)
    return props.same(a, b, ULPS)


def same_on_vm(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_on_vm(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_on_vm(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return close_floats(a, b)
    return a == b


def test_the_corpus_is_big_and_varied():
    outcomes = [cpython(d)[0] for d in INPUTS]
    assert len(INPUTS) >= 1500 and outcomes.count("ok") >= 500 and outcomes.count("refused") >= 500
    # CPython's int() refuses over 4300 digits where MicroPython goes on; the firmware's
    # inputs are 2 KB at most (a cloud frame), so the corpus stays below that
    assert max(len(d) for d in INPUTS) < 4300


def test_cpython_takes_exactly_rfc_8259_and_the_policy():
    for data in INPUTS:
        ok, want = props.reference(data)
        kind, got = cpython(data)
        assert kind == ("ok" if ok else "refused"), (data[:200], want)
        if ok:
            assert props.same(got, want), data[:200]


def test_where_cpython_json_takes_more_it_is_policy_or_not_json():
    reasons = {}
    for data in INPUTS:
        theirs = props.cpython_json(data)[0]
        ours = cpython(data)[0] == "ok"
        assert ours <= theirs, data[:200]  # nothing CPython refuses (in inputs under 4300 bytes)
        if theirs and not ours:
            why = props.reference(data)[1]
            assert why in props.POLICY | props.NOT_RFC, (why, data[:200])
            reasons[why] = reasons.get(why, 0) + 1
    # each difference shows up in the corpus, so this test could catch a change in any
    assert set(reasons) == props.POLICY | props.NOT_RFC, reasons


def test_the_vm_gives_what_cpython_gives(on_vm):
    bad = []
    for data, (kind, got) in zip(INPUTS, on_vm):
        want_kind, want = cpython(data)
        if kind != want_kind or kind == "ok" and not same_on_vm(want, got):
            bad.append((data[:120], want_kind, want, kind, got))
    assert not bad, f"{len(bad)} of {len(INPUTS)} differ, first: {bad[:5]}"


def test_floats_are_compared(on_vm):
    # the corpus holds enough floats for test_the_vm_gives_what_cpython_gives to mean
    # something (on the corpus of this writing: 659 exact, 111 one ulp off, 4 inf)
    count = sum(len(list(_floats(got))) for kind, got in on_vm if kind == "ok")
    assert count >= 500, count


def _floats(v):
    if isinstance(v, float):
        yield v
    elif isinstance(v, dict):
        for k in sorted(v):
            yield from _floats(v[k])
    elif isinstance(v, list):
        for x in v:
            yield from _floats(x)
