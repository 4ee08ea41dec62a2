# pairing/handlers.py: GET /device and POST /ap, request in, (status, body, pairing) out.
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py).
import json

from pairing.handlers import OK, handle
from pairing.http import Parser, error_body, response

S = {
    "deviceid": "100000788a",
    "apikey": "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea",
    "chipid": "0a1b2c3d",
}
PW = "s3cret-pw"
TOKEN = "0123456789abcdefghijklmnopqrstuvwxyz0123"  # 40 of [0-9a-z]


def post(body):
    return handle("POST", "/ap", body, S)


def accepted(fields):
    """POST fields (a dict, sent as JSON) that must be accepted -> the pairing."""
    status, body, pairing = post(json.dumps(fields).encode())
    assert (status, body) == (200, OK), body
    return pairing


def rejected(fields, reason):
    """POST fields (a dict, or raw body bytes) that must get a 400 `reason`, echoing no secret."""
    raw = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    status, body, pairing = post(raw)
    assert (status, body, pairing) == (400, error_body(400, reason), None), (raw, body)
    if not isinstance(fields, bytes):
        for key in ("password", "token"):
            secret = fields.get(key)
            if isinstance(secret, str) and secret:
                assert secret.encode() not in body


def creds(**extra):
    d = {"ssid": "home", "password": PW, "token": TOKEN}
    d.update(extra)
    return d


# --- GET /device ---------------------------------------------------------------

DEVICE = b'{"deviceid":"100000788a","apikey":"4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea","chipid":"0a1b2c3d","accept":"post"}'


def test_get_device_body_exact_bytes():
    assert handle("GET", "/device", b"", S) == (200, DEVICE, None)


def test_get_device_on_the_wire():
    # the seed's request in, the seed's response out, with the true Content-Length
    p = Parser()
    p.feed(b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\nConnection: Keep-Alive\r\n\r\n")
    method, path, body, keep_alive = p.next_request()
    status, body, _ = handle(method, path, body, S)
    assert response(status, body, keep_alive) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
        b"Content-Length: 109\r\n\r\n" + DEVICE
    )
    assert len(DEVICE) == 109


def test_unknown_path_404_wrong_method_405():
    assert handle("GET", "/nope", b"", S) == (404, b'{"error":404,"reason":"no such path"}', None)
    assert handle("POST", "/device", b"", S) == (405, b'{"error":405,"reason":"use GET"}', None)
    assert handle("GET", "/ap", b"", S) == (405, b'{"error":405,"reason":"use POST"}', None)


# --- POST /ap: the body styles real clients send -------------------------------------


def test_seed_body():
    body = b'{"port":443,"serverName":"54.223.98.144","password":"12345678","ssid":"ITT"}'
    assert post(body) == (200, b'{"error":0}', {"ssid": "ITT", "password": "12345678", "server": "54.223.98.144", "port": 443})


def test_phone_app_body():
    body = b'{"ssid":"mywifi","password":"11111111","serverName":"192.168.2.1","port":80}'
    assert post(body) == (200, OK, {"ssid": "mywifi", "password": "11111111", "server": "192.168.2.1", "port": 80})


def test_community_tool_body():
    body = b'{"version": 4, "ssid": "TestNet", "password": "secret123", "serverName": "127.0.0.1", "port": 8443}'
    assert post(body) == (200, OK, {"ssid": "TestNet", "password": "secret123", "server": "127.0.0.1", "port": 8443})


def test_ssid_alias_and_port_as_string():
    assert accepted({"SSID": "home", "password": PW, "port": "443"}) == {"ssid": "home", "password": PW, "port": 443}


def test_absent_password_is_an_open_network():
    assert accepted({"ssid": "cafe"}) == {"ssid": "cafe", "password": ""}


def test_form_body():
    assert post(b"ssid=my+wifi&password=p%40ssw0rd!") == (200, OK, {"ssid": "my wifi", "password": "p@ssw0rd!"})
    assert post(b"ssid=caf%C3%A9&password=")[2] == {"ssid": "caf\u00e9", "password": ""}
    rejected(b"ssid=a&password=%zz345678", "bad body")
    rejected(b"ssid=a&password", "bad body")


# --- token ---------------------------------------------------------------------------


def test_valid_token_kept():
    assert accepted(creds())["token"] == TOKEN


def test_invalid_token_rejected():
    for token in (TOKEN[:39], TOKEN + "a", TOKEN.upper(), TOKEN[:39] + "-", 1234):
        rejected(creds(token=token), "bad token")


# --- validation boundaries -----------------------------------------------------------


def test_ssid_length_in_utf8_bytes():
    rejected(creds(ssid=""), "bad ssid")
    assert accepted(creds(ssid="a"))["ssid"] == "a"
    assert accepted(creds(ssid="a" * 32))["ssid"] == "a" * 32
    rejected(creds(ssid="a" * 33), "bad ssid")
    e = "\u00e9"  # two bytes in UTF-8
    assert accepted(creds(ssid=e * 16))["ssid"] == e * 16
    rejected(creds(ssid=e * 16 + "a"), "bad ssid")  # 17 characters, 33 bytes
    rejected(creds(ssid=5), "bad ssid")
    rejected({"password": PW}, "bad ssid")


def test_password_rules():
    for pw in ("", "a" * 8, "a" * 63, "0123456789abcdefABCDEF" * 2 + "0" * 20, "with space~!"):
        assert accepted(creds(password=pw))["password"] == pw
    for pw in ("a" * 7, "g" * 64, "a" * 65, "1234567\x01", "1234567\x7f", 12345678):
        rejected(creds(password=pw), "bad password")


def test_port_range():
    for port in (1, 65535, "1", "65535"):
        assert accepted(creds(port=port))["port"] == int(port)
    for port in (0, 65536, True, False, "abc", -1, "-1", "", 443.0, None):
        rejected(creds(port=port), "bad port")


def test_server_name():
    label = "a" * 63
    longest = ".".join((label, label, label, "a" * 61))
    assert len(longest) == 253
    for host in ("iot.espressif.cn", "54.223.98.144", "localhost", "a-b.example", longest):
        assert accepted(creds(serverName=host))["server"] == host
    for host in ("256.1.1.1", "1.2.3", "1.2.3.4.5", "-bad.example", "bad-.example",
                 "a..b", longest + "a", "", "a_b.example", "a" * 64 + ".example", 5):
        rejected(creds(serverName=host), "bad serverName")


# --- bodies that are not a JSON object -----------------------------------------------


def test_malformed_json():
    rejected(b'{"ssid":"home","password":tru}', "bad json")
    rejected(b'{"ssid":"home","password":"12345678"}}', "bad json")
    rejected(b"{", "bad json")


def test_truncated_json_is_rejected():
    # MicroPython's json.loads returns {"ssid": "a", "password": "12345678"} for this
    rejected(b'{"ssid":"a","password":"12345678"', "bad json")
    rejected(b'{"ssid":"a","password":"12345678",', "bad json")


def test_truncated_json_ending_in_a_nested_object_is_rejected():
    # also cut short, though its last byte is a "}"
    rejected(b'{"ssid":"a","password":"12345678","extra":{}', "bad json")


def test_other_bodies_400():
    for body in (b'["ssid","home"]', b"", b"   ", b'"ssid"', b"null"):
        status, reply, pairing = post(body)
        assert (status, pairing) == (400, None), body


def test_bad_utf8_400():
    rejected(b'{"ssid":"\xff\xfe","password":"12345678"}', "bad json")
    rejected(b"ssid=\xff\xfe&password=12345678", "bad body")


def test_errors_never_echo_secrets():
    # one submission per field that can be wrong, all carrying the password and token
    for bad in ({"ssid": ""}, {"password": PW + "\x01"}, {"port": 0}, {"serverName": "-x"},
                {"token": TOKEN.upper()}):
        fields = creds(**bad)
        status, body, pairing = post(json.dumps(fields).encode())
        assert status == 400 and pairing is None
        assert PW.encode() not in body and TOKEN.encode() not in body and TOKEN.upper().encode() not in body
