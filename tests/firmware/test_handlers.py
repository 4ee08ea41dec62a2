# pairing/handlers.py: GET /device and POST /ap, request in, (status, body, content type,
# headers) out. Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py).
import json
from collections import namedtuple

from pairing.handlers import OK, handle
from pairing.server import Server
from pairing.http import Parser, error_body, request, response

S = {
    "deviceid": "100000788a",
    "apikey": "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea",
    "chipid": "0a1b2c3d",
    "ap_ssid": "",
}
PW = "s3cret-pw"
TOKEN = "0123456789abcdefghijklmnopqrstuvwxyz0123"  # 40 of [0-9a-z]


# a reply, and the pairing it gave (ctx.accepted after an accepted POST /ap, a retry too)
Reply = namedtuple("Reply", ("status", "body", "content_type", "headers", "pairing"))


def call(method, target, body=b"", host="10.10.7.1", ctx=None, html=False):
    ctx = ctx or Server(S, "10.10.7.1")
    status, body, content_type, headers = handle(request(method, target, host, body, True, html), ctx)
    return Reply(status, body, content_type, headers, ctx.accepted if method == "POST" and status == 200 else None)


def streamed(body):
    """A page's bytes: a handler gives (its function, their arguments) for the server to
    call on the connection's turn."""
    make, args = body
    return b"".join(make(*args))


def triple(reply):
    body = reply.body if isinstance(reply.body, bytes) else streamed(reply.body)
    return reply.status, body, reply.pairing


def post(body, html=False):
    return triple(call("POST", "/ap", body, html=html))


def accepted(fields):
    """POST fields (a dict, sent as JSON) that must be accepted -> the pairing."""
    status, body, pairing = post(json.dumps(fields).encode())
    assert (status, body) == (200, OK), body
    return pairing


def rejected(fields, reason):
    """POST fields (a dict, or raw body bytes) that must get a 400 `reason`, echoing no secret:
    an app gets the JSON error; a browser (the portal's form) a page that says what to do."""
    raw = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    status, body, pairing = post(raw)
    assert (status, body, pairing) == (400, error_body(400, reason), None), (raw, body)
    status, body, pairing = post(raw, html=True)
    assert (status, pairing) == (400, None) and body.startswith(b"<!doctype html>"), (raw, body)
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
    assert triple(call("GET", "/device")) == (200, DEVICE, None)


def test_get_device_on_the_wire():
    # the seed's request in, the seed's response out, with the true Content-Length
    p = Parser()
    p.feed(b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\nConnection: Keep-Alive\r\n\r\n")
    req = p.next_request()
    status, body, _, _ = handle(req, Server(S, "10.10.7.1"))
    assert response(status, body, req[5]) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
        b"Content-Length: 109\r\n\r\n" + DEVICE
    )
    assert len(DEVICE) == 109


def test_unknown_path_404_wrong_method_405_with_allow():
    assert triple(call("GET", "/nope")) == (404, b'{"error":404,"reason":"no such path"}', None)
    reply = call("POST", "/device")
    assert triple(reply) == (405, b'{"error":405,"reason":"use GET"}', None)
    assert reply.headers == "Allow: GET, HEAD\r\n"
    reply = call("GET", "/ap")
    assert triple(reply) == (405, b'{"error":405,"reason":"use POST"}', None) and reply.headers == "Allow: POST\r\n"
    assert call("PUT", "/").headers == "Allow: GET, HEAD\r\n"


def test_head_is_answered_where_get_is():
    assert triple(call("HEAD", "/device"))[:2] == (200, DEVICE)  # the server leaves the body out
    assert call("HEAD", "/").status == 200


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
    status, body, pairing = post(b"ssid=my+wifi&password=p%40ssw0rd!", html=True)
    assert (status, pairing) == (200, {"ssid": "my wifi", "password": "p@ssw0rd!"})
    assert b"Joining my wifi" in body and b"p@ssw0rd" not in body  # the portal's answer: a page
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
    # 8..63 bytes of UTF-8 (as routers take them), 64 hex digits, or empty; the same rule in touch mode
    for pw in ("", "a" * 8, "a" * 63, "0123456789abcdefABCDEF" * 2 + "0" * 20, "with space~!",
               "\u5bc6\u780112345678", "\u5bc6\u7801\u5bc6\u78011", "\u00e9" * 31 + "a"):
        assert accepted(creds(password=pw))["password"] == pw
    for pw in ("a" * 7, "g" * 64, "a" * 65, "1234567\x01", "1234567\x7f", 12345678, "\u5bc6\u78011",
               "\u00e9" * 32, "\u00e9" * 64):
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


# --- the captive portal --------------------------------------------------------------


def test_phone_probes_and_foreign_hosts_go_to_the_portal():
    for path in ("/generate_204", "/gen_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt",
                 "/canonical.html", "/success.txt", "/library/test/success.html"):
        reply = call("GET", path)
        assert (reply.status, reply.headers) == (302, "Location: http://10.10.7.1/\r\n"), path
    for host in ("connectivitycheck.gstatic.com", "captive.apple.com", "example.com:80"):
        reply = call("GET", "/anything?x=1", host=host)
        assert (reply.status, reply.headers) == (302, "Location: http://10.10.7.1/\r\n"), host
    assert call("GET", "/", host="10.10.7.1:80").status == 200
    # apps keep the seed's exchange whatever Host they send
    assert call("GET", "/device", host="device.local").status == 200


def test_no_redirects_on_the_lan():
    # touch mode serves the same handlers on the LAN address: no captive portal there
    ctx = Server(S)
    assert call("GET", "/generate_204", host="192.168.1.7", ctx=ctx).status == 404
    assert call("GET", "/", host="192.168.1.7", ctx=ctx).status == 200


def page(ctx, target="/"):
    reply = call("GET", target, ctx=ctx)
    assert reply.status == 200 and reply.content_type.startswith("text/html")
    return streamed(reply.body).decode()


def test_the_page_lists_networks_escaped_and_prefills_the_cloud_fields():
    networks = [("home", -48), ('<script>alert("x")</script>', -70), ("far away", -88)]
    text = page(Server(S, "10.10.7.1", networks), "/?server=cloud.example%3A8443&token=" + TOKEN)
    assert "100000788a" in text and text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert '<option value="home">home (strong)</option>' in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; (fair)" in text and "<script>" not in text
    assert "far away (weak)" in text
    assert text.index("home") < text.index("far away")
    assert 'value="cloud.example:8443"' in text and 'value="%s"' % TOKEN in text and "<details open>" in text
    assert "@" not in "".join(line for line in text.splitlines() if line.startswith("@"))


def test_the_page_without_networks_and_with_the_last_outcome():
    text = page(Server(S, "10.10.7.1", [], 'could not join "home": wrong password'))
    assert "no network found" in text
    assert "Last attempt: could not join &quot;home&quot;: wrong password" in text
    assert "<details>" in text  # nothing to prefill: folded
    assert page(Server(S, "10.10.7.1"), "/?%zz").count("<form") == 1  # a query not ours: ignored


def test_the_portal_form_fields():
    body = b"ssid=home&hidden=&password=s3cret-pw&server=cloud.example%3A8443&token=" + TOKEN.encode()
    assert post(body)[2] == {"ssid": "home", "password": PW, "server": "cloud.example", "port": 8443, "token": TOKEN}
    assert post(b"ssid=home&hidden=secret+net&password=&server=&token=")[2] == {"ssid": "secret net", "password": ""}
    assert post(b"ssid=home&password=&server=10.0.0.2")[2] == {"ssid": "home", "password": "", "server": "10.0.0.2"}
    rejected(b"ssid=home&password=&server=cloud.example%3A99999", "bad port")


def test_the_first_post_wins():
    ctx = Server(S, "10.10.7.1")
    first = json.dumps(creds()).encode()
    assert triple(call("POST", "/ap", first, ctx=ctx))[0] == 200
    assert triple(call("POST", "/ap", first, ctx=ctx))[:2] == (200, OK)  # the same again: a retry
    other = json.dumps(creds(ssid="office")).encode()
    assert triple(call("POST", "/ap", other, ctx=ctx)) == (409, error_body(409, "already pairing"), None)
    assert ctx.accepted["ssid"] == "home"
