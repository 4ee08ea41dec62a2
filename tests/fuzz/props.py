"""What the fuzzing shares between the hypothesis tests (tests/fuzz/test_fuzz_*.py), the
long run (tests/fuzz/run.py) and the differential test (tests/test_json_differential.py):
the corpus files, an RFC 8259 reference for jsonobj, generators of valid inputs for each
parser from a random.Random, and byte mutations of them."""
import json
import math
import random
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "firmware" / "corpus"
for _dir in (ROOT / "firmware", ROOT / "tests" / "shims", Path(__file__).parent):
    if str(_dir) not in sys.path:
        sys.path.append(str(_dir))

import drive  # noqa: E402  (needs the firmware on sys.path)
from pairing import http  # noqa: E402

DEPTH, VALUES = 8, 256  # jsonobj's bounds (_DEPTH, _VALUES)
# Where CPython's json.loads(bytes) takes an input and jsonobj refuses it, the reason is
# one of these. jsonobj's policy (see firmware/jsonobj.py):
POLICY = {"top level not an object", "lone surrogate", "too deep", "too many values"}
# and what RFC 8259 refuses but CPython takes: its NaN/Infinity extension, and bytes
# that are not UTF-8 (surrogates encoded in UTF-8, which it decodes with surrogatepass;
# a BOM, UTF-16 and UTF-32, which it detects)
NOT_RFC = {"NaN or Infinity", "not UTF-8"}


# --- the corpus: tests/firmware/corpus/<driver>.txt, a line per input: hex [# note] ---

# "-" is the empty input; a line that starts with "#" is a comment.

def read_corpus(name):
    path = CORPUS / f"{name}.txt"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            out.append(b"" if text == "-" else bytes.fromhex(text))
    return out


def corpus_line(data, note=""):
    return (data.hex() or "-") + (f"  # {note}" if note else "") + "\n"


def add_to_corpus(name, data, note=""):
    """Append data to the driver's corpus unless it is there already. True if added."""
    if data in read_corpus(name):
        return False
    CORPUS.mkdir(parents=True, exist_ok=True)
    with open(CORPUS / f"{name}.txt", "a") as f:
        f.write(corpus_line(data, note))
    return True


# --- jsonobj's reference ------------------------------------------------------------

class _Constant(ValueError):
    pass


def _no_constant(name):
    raise _Constant(name)


def reference(data):
    """(True, value) where jsonobj.loads must return value; (False, why) where it must
    refuse: RFC 8259 (UTF-8, no extensions) read by CPython's json, plus jsonobj's policy."""
    data = bytes(data)
    if json.detect_encoding(data) != "utf-8":  # a BOM, or NULs where UTF-16/32 has them
        return False, "not UTF-8"
    try:
        text = data.decode("utf-8")  # strict: no surrogates, no overlong forms
    except UnicodeDecodeError:
        return False, "not UTF-8"
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_Pairs)
    except _Constant:
        return False, "NaN or Infinity"
    except RecursionError:
        return False, "too deep"
    except ValueError:
        return False, "not JSON"
    if type(value) is not _Pairs:
        return False, "top level not an object"
    why = _policy(value)
    return (False, why) if why else (True, _plain(value))


class _Pairs(list):
    """An object as its text has it: every pair, a duplicate key's too (jsonobj checks
    the text: a value that a later duplicate key replaces counts all the same)."""


def _policy(value):
    # jsonobj's bounds and its refusal of lone surrogates, on what CPython read (or a dict)
    count = 0
    todo = [(value, 1)]
    while todo:
        v, depth = todo.pop()
        count += 1
        if isinstance(v, (list, dict)):
            if depth > DEPTH:
                return "too deep"
            for x in v.items() if isinstance(v, dict) else v:
                if type(v) is not list:  # a dict or _Pairs: (key, value)
                    k, x = x
                    if not _utf8(k):
                        return "lone surrogate"
                todo.append((x, depth + 1))
        elif isinstance(v, str) and not _utf8(v):
            return "lone surrogate"
    return "too many values" if count > VALUES else None


def _plain(v):
    # _Pairs made dicts, the last of duplicate keys winning as in json.loads
    if type(v) is _Pairs:
        return {k: _plain(x) for k, x in v}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _utf8(text):
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


def cpython_json(data):
    """(True, value) or (False, None): CPython's json.loads(bytes), as it comes."""
    try:
        return True, json.loads(bytes(data))
    except (ValueError, RecursionError):
        return False, None


def same(a, b, ulps=0):
    """a == b, types included (True is no 1), floats within `ulps` units in the last place."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], ulps) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, ulps) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (
            ulps and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= ulps * math.ulp(max(abs(a), abs(b))))
    return a == b


# --- generators of valid inputs, from a random.Random (run.py; hypothesis via st.randoms) ---

_CHARS = ("a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "\xe9", "\u20ac", "\ud7ff",
          "\ue000", "\uffff", "\U0001f3e0", "\U0010ffff", "{", "}", "[", "]", ":", ",")


def json_text(rng, n):
    return "".join(rng.choice(_CHARS) for _ in range(n))


def json_number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randint(-10, 10)
    if kind == 1:
        return rng.randint(-2**70, 2**70)
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        return struct.unpack("<d", rng.randbytes(8))[0]  # any double: NaN and inf made finite
    if kind == 4:
        return rng.choice([0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e22, 0.1])
    return float(rng.randint(-2**60, 2**60)) * 10.0 ** rng.randint(-320, 300)


def json_value(rng, depth=1, budget=None):
    """A JSON-able value: depth counts from 1 at the top object."""
    budget = budget if budget is not None else [rng.choice((4, 20, 60, 250))]
    kind = rng.randrange(9) if depth <= DEPTH and budget[0] > 0 else rng.randrange(6)
    budget[0] -= 1
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind in (2, 3):
        n = json_number(rng)
        return 0.0 if isinstance(n, float) and not math.isfinite(n) else n
    if kind in (4, 5):
        return json_text(rng, rng.choice((0, 1, 3, 10)))
    if kind in (6, 7):
        return {json_text(rng, rng.choice((0, 1, 4))): json_value(rng, depth + 1, budget)
                for _ in range(rng.choice((0, 1, 2, 5)))}
    return [json_value(rng, depth + 1, budget) for _ in range(rng.choice((0, 1, 2, 5)))]


def json_object(rng):
    r = rng.random()
    if r < 0.05:  # nesting about jsonobj's bound
        v = {}
        for _ in range(rng.randint(DEPTH - 3, DEPTH)):
            v = {"a": v} if rng.random() < 0.5 else [v]
        return {"a": v}  # DEPTH - 1 .. DEPTH + 1 deep
    if r < 0.1:  # values about jsonobj's bound
        return {"a": [rng.choice((0, "", None, [], {})) for _ in range(rng.randint(VALUES - 4, VALUES + 1))]}
    while True:
        obj = {json_text(rng, rng.choice((1, 3))): json_value(rng, 2) for _ in range(rng.choice((0, 1, 3, 6)))}
        if reference(json.dumps(obj).encode())[0]:
            return obj


def dumps(rng, obj):
    """obj as JSON bytes in one of the ways people write it."""
    style = rng.randrange(5)
    if style == 0:
        text = json.dumps(obj)
    elif style == 1:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    elif style == 2:
        text = json.dumps(obj, indent=rng.choice((1, 2, "\t")), ensure_ascii=False)
    elif style == 3:
        text = json.dumps(obj, sort_keys=True) + "\r\n"
    else:
        text = " \n" + json.dumps(obj, separators=(" ,", " : ")) + "\t"
    return text.encode("utf-8")


def gen_json(rng):
    return dumps(rng, json_object(rng))


_HEADERS = [b"Host: example.com:80", b"Connection: close", b"Connection: keep-alive", b"Expect: 100-continue",
            b"Accept: text/html", b"Content-Type: application/x-www-form-urlencoded", b"User-Agent: x/1.0",
            b"Transfer-Encoding: chunked"]


def ap_body(rng):
    if rng.random() < 0.5:
        body = {"ssid": json_text(rng, rng.randint(0, 12)), "password": rng.choice(("", "password", "x" * 63, "ab"))}
        if rng.random() < 0.5:
            body["serverName"] = rng.choice(("cloud.example", "10.0.0.1", "a-b.c", "-x", ""))
            body["port"] = rng.choice((8443, "8443", 0, 65536, True))
        if rng.random() < 0.3:
            body["token"] = rng.choice(("a" * 40, "A" * 40, ""))
        return dumps(rng, body)
    fields = ["ssid=" + rng.choice(("home", "caf%C3%A9", "%F0%9F%8F%A0", "a+b", "%zz", "")),
              "password=" + rng.choice(("password", "", "%00x", "12345678")),
              "server=" + rng.choice(("cloud.example:8443", "1.2.3.4", "", "x:y"))]
    rng.shuffle(fields)
    return "&".join(fields[:rng.randint(1, 3)]).encode()


def http_request(rng):
    method = rng.choice((b"GET", b"POST", b"HEAD", b"PUT"))
    target = rng.choice((b"/", b"/ap", b"/device", b"/generate_204", b"/?server=a%3A1&token=t", b"/x?y"))
    body = ap_body(rng) if method == b"POST" else b""
    if rng.random() < 0.1:  # about the body's cap
        body = b"x" * rng.randint(http.MAX_BODY - 8, http.MAX_BODY + 8)
    headers = [b"Host: " + rng.choice((b"10.10.7.1", b"10.10.7.1:80", b"connectivitycheck.gstatic.com"))]
    if rng.random() < 0.1:  # about the head's cap
        headers.append(b"X-Pad: " + b"a" * rng.randint(http.MAX_HEAD - 120, http.MAX_HEAD - 60))
    if body or rng.random() < 0.2:
        headers.append(b"Content-Length: %d" % len(body))
    for _ in range(rng.randint(0, 3)):
        headers.append(rng.choice(_HEADERS[:-1] if rng.random() < 0.9 else _HEADERS))
    nl = rng.choice((b"\r\n", b"\n"))
    return method + b" " + target + b" " + rng.choice((b"HTTP/1.1", b"HTTP/1.0")) + nl + nl.join(headers) + nl + nl + body


def gen_http(rng):
    return bytes((rng.randrange(256),)) + b"".join(http_request(rng) for _ in range(rng.randint(1, 3)))


def gen_post_ap(rng):
    return ap_body(rng)


def dns_name(rng):
    labels = [bytes(rng.choice(b"abcxyz019-") for _ in range(rng.choice((1, 3, 10, 63)))) for _ in range(rng.randint(0, 4))]
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def gen_dns(rng):
    flags = rng.choice((b"\x01\x00", b"\x00\x00", b"\x81\x80", b"\x28\x00"))
    counts = rng.choice((b"\x00\x01\x00\x00\x00\x00\x00\x00", b"\x00\x01\x00\x00\x00\x00\x00\x01", b"\x00\x02" + b"\x00" * 6))
    qtype = rng.choice((b"\x00\x01", b"\x00\x1c", b"\x00\xff", b"\x00\x41"))
    return rng.randbytes(2) + flags + counts + dns_name(rng) + qtype + b"\x00\x01"


def touch_credentials(rng):
    ssid = json_text(rng, rng.randint(1, 8)).replace("\ud7ff", "x") or "x"
    while len(ssid.encode()) > 32:
        ssid = ssid[:-1]
    password = rng.choice(("", "password", "12345678", "p\xe4ssw\xf6rd", "x" * 64))
    bssid = None if rng.random() < 0.2 else ":".join("%02x" % rng.randrange(256) for _ in range(6))
    ip = "%d.%d.%d.%d" % tuple(rng.randrange(256) for _ in range(4))
    return ssid, password, bssid, ip, rng.random() < 0.2


def touch_lengths(rng, creds, rounds=2):
    from esplink.touch import GUIDE, data_lengths
    ssid, password, bssid, ip, omit = creds
    data = data_lengths(ssid, password, bssid, ip, omit_bssid=omit)
    return list(GUIDE) * 3 + data * rounds


def gen_esptouch(rng):
    lengths = touch_lengths(rng, touch_credentials(rng), rounds=rng.choice((1, 2)))
    offset = rng.choice((0, 0, 28, 40))  # sniffed frames are longer than the payload
    return b"".join(struct.pack(">H", n + offset) for n in lengths)


def cloud_frame(rng):
    obj = rng.choice((
        {"nonce": rng.randrange(2**31), "status": 200, "message": "ping success"},
        {"deliver_to_device": True, "get": {"action": "LED_ON"}, "meta": {}, "method": "GET",
         "nonce": rng.randrange(2**31), "path": "/v1/device/rpc/"},
        None,
    )) or json_object(rng)
    return dumps(rng, obj).strip() + rng.choice((b"\n", b"\r\n", b"", b"\n\n"))


def gen_proto(rng):
    return bytes((rng.randrange(256),)) + b"".join(cloud_frame(rng) for _ in range(rng.randint(1, 4)))


GENERATORS = {
    "jsonobj": gen_json,
    "http": gen_http,
    "pairing_server": gen_http,
    "post_ap": gen_post_ap,
    "dns": gen_dns,
    "esptouch": gen_esptouch,
    "proto": gen_proto,
}

# bytes worth inserting: the grammar's own, and UTF-8's edges
_INTERESTING = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"\\", b"\\u", b"\\ud83c", b"\\udfe0", b"\\ud800", b"-",
                b"0", b"1", b".", b"e", b"E+", b"0e400", b"true", b"null", b" ", b"\t", b"\r\n", b"\n\n", b"\x00",
                b"\x1f", b"\x7f", b"\x80", b"\xbf", b"\xc0\x80", b"\xc3", b"\xc3\xa9", b"\xe0\xa0\x80", b"\xed\xa0\x80",
                b"\xef\xbb\xbf", b"\xf0\x9f\x8f\xa0", b"\xf4\x90\x80\x80", b"\xff", b"%", b"%zz", b"=", b"&",
                b"\xc0\x0c", b"\x3f", b"\x02\x02", b"\x01\x23"]


def mutate(rng, data):
    """data with 1..4 random edits: byte flips, inserts of interesting bytes, deletes,
    duplicated or truncated runs."""
    data = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        op = rng.randrange(7)
        i = rng.randint(0, len(data))
        if op == 0 and data and i < len(data):
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data and i < len(data):
            data[i] = rng.randrange(256)
        elif op == 2:
            data[i:i] = rng.choice(_INTERESTING)
        elif op == 3:
            del data[i:i + rng.randint(1, 8)]
        elif op == 4:
            j = rng.randint(i, min(len(data), i + 32))
            data[i:i] = data[i:j] * rng.randint(1, 8)
        elif op == 5:
            del data[i:]
        else:
            data[i:i] = rng.randbytes(rng.randint(1, 4))
    return bytes(data)


def fuzz_input(rng, name, corpus=()):
    """One input for driver `name`: generated, mutated, or a mutated corpus entry."""
    r = rng.random()
    if corpus and r < 0.2:
        return mutate(rng, rng.choice(corpus))
    data = GENERATORS[name](rng)
    return data if r < 0.4 else mutate(rng, data)


def check(name, data):
    """Runs driver `name` on data plus the CPython-only checks; raises on a failure."""
    got = drive.DRIVERS[name](data)
    if name == "jsonobj":
        ok, want = reference(data)
        if ok != (got is not None) or ok and not same(got, want):
            raise AssertionError(f"jsonobj.loads {'accepted' if got is not None else 'refused'}; "
                                 f"the reference: {want if ok else 'refuses: ' + want}")
    elif name == "http" and data:
        # the same requests and the same error whatever the reads: one byte at a time here
        again = drive.http_stream(b"\x00" + data[1:])
        assert again == got
    elif name == "proto" and data and len(data) < 2000:
        # the same frames whatever the reads (while nothing fills the 2 KB buffer)
        again = drive.cloud_stream(bytes(((data[0] + 128) % 256,)) + data[1:])[0]
        assert [x for x in again if type(x) is dict] == [x for x in got[0] if type(x) is dict]
    elif name == "dns" and got is not None:
        import dns.message  # dnspython: a real resolver reads the reply

        dns.message.from_wire(got)
    return got


def budget(examples):
    """The hypothesis settings of the fuzz tests: the same inputs every run, no example
    database, no deadline (a 2-core machine under load is slow), `examples` inputs."""
    from hypothesis import HealthCheck, settings

    return settings(derandomize=True, database=None, deadline=None, max_examples=examples,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
