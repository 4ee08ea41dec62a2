"""Property-based fuzzing of the pairing server's parsing under CPython: the HTTP request
parser (firmware/pairing/http.py) fed in reads of any size, the handlers answering what
it parses (pairing/handlers.py), and POST /ap's validation (handlers.parse_ap). Only
ValueError with the documented statuses and reasons, a bounded buffer, and
what a well-formed request or body holds comes out as it went in."""
import json
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

import drive
import props
from pairing import handlers

token = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=7)
path = st.text("abcxyz019-._~/%", max_size=20).map(lambda p: "/" + p)
query = st.text("abc019=&%+", max_size=12)
host = st.text("abcxyz019-.:", max_size=20)


@props.budget(2500)
@given(st.binary(max_size=300))
def test_any_bytes(data):
    drive.http_stream(data)


@props.budget(1200)
@given(st.randoms(use_true_random=False))
def test_mutated_requests(rng):
    props.check("http", props.fuzz_input(rng, "http"))


@props.budget(1000)
@given(st.randoms(use_true_random=False))
def test_mutated_requests_answered(rng):
    props.check("pairing_server", props.fuzz_input(rng, "pairing_server"))


@props.budget(1000)
@given(st.lists(st.tuples(token, path, st.none() | query, host, st.binary(max_size=80), st.booleans()),
                min_size=1, max_size=3),
       st.integers(0, 255), st.sampled_from(["\r\n", "\n"]))
def test_requests_read_back(requests, read_size, nl):
    stream = b""
    for method, target, q, h, body, close in requests:
        head = [f"{method} {target}{'' if q is None else '?' + q} HTTP/1.1", f"Host: {h}",
                f"Content-Length: {len(body)}"] + (["Connection: close"] if close else [])
        stream += (nl.join(head) + nl + nl).encode() + body
    got, status = drive.http_stream(bytes((read_size,)) + stream)
    assert status is None and len(got) == len(requests)
    for req, (method, target, q, h, body, close) in zip(got, requests):
        assert req[:6] == (method, target, q or "", h, body, not close)


@props.budget(2500)
@given(st.binary(max_size=200))
def test_any_post_ap_body(data):
    drive.post_ap(data)
    drive.post_ap(b"{" + data)


@props.budget(2000)
@given(st.randoms(use_true_random=False))
def test_mutated_post_ap_bodies(rng):
    props.check("post_ap", props.fuzz_input(rng, "post_ap"))


ssids = st.text(min_size=1, max_size=32).filter(lambda s: len(s.encode()) <= 32)
passwords = (st.just("") | st.text(st.characters(min_codepoint=0x20, blacklist_characters="\x7f"), min_size=8, max_size=63)
             .filter(lambda p: 8 <= len(p.encode()) <= 63) | st.text("0123456789abcdefABCDEF", min_size=64, max_size=64))
servers = st.tuples(st.lists(st.text("abcz09-", min_size=1, max_size=10).filter(lambda l: l[0] != "-" and l[-1] != "-"),
                             min_size=1, max_size=3).map(".".join).filter(lambda h: not h.replace(".", "").isdigit()),
                    st.integers(1, 65535))
tokens = st.text("0123456789abcdefghijklmnopqrstuvwxyz", min_size=40, max_size=40)


@props.budget(1000)
@given(ssids, passwords, st.none() | servers, st.none() | tokens, st.booleans(), st.booleans())
def test_valid_post_ap_bodies_read_back(ssid, password, server, token, as_form, ascii_only):
    want = {"ssid": ssid, "password": password}
    fields = dict(want)
    if server:
        want["server"], want["port"] = server
        if as_form:
            fields["server"] = "%s:%d" % server
        else:
            fields["serverName"], fields["port"] = server
    if token:
        want["token"] = fields["token"] = token
    body = urlencode(fields).encode() if as_form else json.dumps(fields, ensure_ascii=ascii_only).encode()
    assert handlers.parse_ap(body) == want
