"""Helpers for the end-to-end tests: the board process (from esplink.board.process) and raw HTTP."""
import os
import socket
import subprocess
import sys
from pathlib import Path

from esplink.board.deploy import identity_copies
from esplink.board.process import BoardProcess as Board  # noqa: F401  (the tests' name for it)

HOME = {"home": "secret-home-pw", "office": "office-pw-123"}  # the virtual access points


def esplink(*args, timeout=30, env=None):
    return subprocess.run([sys.executable, "-m", "esplink.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def http_exchange(port, raw_requests, timeout=5.0):
    """Send raw request bytes on one connection; return everything the device sent
    until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for raw in raw_requests:
            s.sendall(raw)
        return read_until_quiet(s)


def read_until_quiet(s, quiet=0.5):
    s.settimeout(quiet)
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def split_responses(data):
    """Parse concatenated HTTP responses into [(status, headers, body)]."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:])
        n = int(headers["Content-Length"])
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


PHONE = {"width": 390, "height": 844}  # a phone's viewport, for pages in Chromium


def artifacts(tmp_path):
    """Where screenshots go: $ESPLINK_ARTIFACTS (kept), else the test's own directory."""
    out = Path(os.environ.get("ESPLINK_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out



def kept_identity(flash):
    """[deviceid, apikey, chipid, device_key] as both identity copies on the board's flash
    hold it; each must verify."""
    kept = identity_copies(flash)
    assert None not in kept and kept[0] == kept[1], kept
    return kept[0]
