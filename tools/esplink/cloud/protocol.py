"""The device protocol's plumbing: line framing, the cloud's JSON style, paths and
the `Authorization: token <key>` value (the REST API shares the last two)."""
from __future__ import annotations

import hashlib
import json
import re

# Real frames are < 1.5 KB; a line this long (newline included) is refused.
FRAME_LIMIT = 4096

_NONCE = re.compile(rb'"nonce"\s*:\s*(\d{1,10})\b')
_AUTH = re.compile(r"token ([0-9A-Za-z]{1,64})", re.IGNORECASE)
_DATASTREAM = re.compile(r"/v1/datastreams/([A-Za-z0-9_.-]{1,64})/datapoint/")

ACTIVATE = "/v1/device/activate/"
IDENTIFY = "/v1/device/identify/"
PING = "/v1/ping/"
RPC = "/v1/device/rpc/"
AUTHORIZE = "/v1/key/authorize/"


# The firmware reads a frame into one 2 KB buffer (firmware/espcloud/proto.py MAX_FRAME):
# a delivery longer than that would be dropped by the device, so it is refused here.
DEVICE_FRAME_LIMIT = 2048


# CPython's asyncio (Lib/asyncio/sslproto.py: SSLProtocol.max_size = 256 * 1024) gives
# every TLS connection a zero-filled 256 KB read buffer: 285 KB RSS per idle device in
# bench/fleet.py. Frames are at most 4 KB and a TLS record 16 KB: one record's worth is
# plenty, and brought a device to ~45 KB.
TLS_READ_BUFFER = 16 * 1024


def fit_for_a_fleet() -> int:
    """For a process holding thousands of TLS sockets (the cloud, the fleet simulator,
    the fleet bench): small TLS read buffers, and the open-files limit raised to the
    hard one -- at the usual soft limit of 1024 the cloud stopped at ~1010 devices,
    its REST API starved too. Returns the open-files limit now in force."""
    import asyncio.sslproto
    import resource

    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Offline(Exception):
    """The device has no live socket to deliver to."""


class TooLarge(Exception):
    """A delivery the device could not take."""


# The shapes on the wire, for the server and for the fleet simulator's devices.


def device_request(nonce: int, method: str, path: str, key: str, body=None) -> dict:
    """What a device sends: activate, identify, ping, a datapoint."""
    msg = {"nonce": nonce, "path": path, "method": method, "meta": {"Authorization": f"token {key}"}}
    if body is not None:
        msg["body"] = body
    return msg


def delivery(nonce: int, method: str, path: str, get: dict, caller_key: str, body=None) -> dict:
    """What the cloud pushes down a device's socket. The caller's key stays in the cloud:
    the field keeps its shape (40 hex digits), and carries the key's SHA-1 instead, which
    tells callers apart and gives nothing away."""
    msg = {"deliver_to_device": True, "get": get, "method": method, "nonce": nonce,
           "meta": {"Authorization": f"token {fingerprint(caller_key)}", "Time-Zone": "Asia/Shanghai"},
           "path": path}
    if body is not None:
        msg["body"] = body
    return msg


def fingerprint(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def delivery_reply(nonce: int, status: int = 200, **fields) -> dict:
    """A device's answer to a delivery: no path, the delivery's nonce."""
    return dict(fields, status=status, nonce=nonce, deliver_to_device=True)


def is_delivery_reply(msg: dict) -> bool:
    return msg.get("deliver_to_device") is True and "path" not in msg


def normalize(path: str) -> str:
    """Both spellings are in use (the C demo sent /v1/device/identify): end with "/"."""
    return path if path.endswith("/") else path + "/"


def datastream(path: str):
    """The stream name of a normalized /v1/datastreams/<name>/datapoint/ path, else None."""
    m = _DATASTREAM.fullmatch(path)
    return m.group(1) if m else None


def datastream_path(name: str) -> str:
    return f"/v1/datastreams/{name}/datapoint/"


def authorization(value):
    """The key in "token <key>", or None when missing or garbled."""
    m = _AUTH.fullmatch(value.strip()) if isinstance(value, str) else None
    return m.group(1) if m else None


def encode(obj) -> bytes:
    """The cloud's style: Python json.dumps (", " and ": "), sorted keys, newline."""
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


def parse(line: bytes) -> dict:
    """The JSON object on a line; ValueError (with a message for the device) if not."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("bad json: not UTF-8") from None
    except RecursionError:  # "[[[[..." within the size bound
        raise ValueError("bad json: nested too deep") from None
    except ValueError as e:
        raise ValueError(f"bad json: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("bad request: not a json object")
    return obj


def guess_nonce(raw: bytes):
    """The nonce of a frame that could not be parsed, so the 400 can still echo it."""
    m = _NONCE.search(raw)
    return int(m.group(1)) if m else None


class Framer:
    """Cuts a byte stream into lines. feed() returns [(line, oversize)]: an oversize line
    comes out once, cut to the limit, and the rest of it is dropped as it arrives."""

    def __init__(self, limit=FRAME_LIMIT):
        self.limit = limit
        self.buf = bytearray()
        self.skipping = False  # inside the tail of an oversize line

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        out = []
        self.buf += data
        while True:
            end = self.buf.find(b"\n")
            if end < 0:
                if len(self.buf) >= self.limit:
                    if not self.skipping:
                        out.append((bytes(self.buf[:self.limit]), True))
                        self.skipping = True
                    self.buf.clear()
                return out
            line = bytes(self.buf[:end])
            del self.buf[:end + 1]
            if self.skipping:
                self.skipping = False
            elif end + 1 > self.limit:
                out.append((line[:self.limit], True))
            else:
                out.append((line, False))
