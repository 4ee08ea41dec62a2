# What the pairing server answers, as pure functions: a request in (http.request), a reply out: a
# tuple (status, body, content type, extra header lines), the body bytes or, for a page
# streamed from flash, (a pairing.portal function, its arguments), which the server
# calls for the page's chunks when it is that connection's turn to stream: a page's
# generator (its frame and its file) is heap, and there is one at a time (a tuple, not
# an object: its class would sit in the heap).
# The seed's exchange (GET /device, POST /ap with JSON) for apps, byte for byte; the
# captive portal (a page at /, redirects for the phones' connectivity probes) for a
# person with a browser.
from pairing import http, portal
from pairing.http import HTML, error_body

OK = b'{"error":0}'
# where each phone OS looks for the internet; anything but the expected answer opens
# the portal (Android, Apple, Windows, Firefox). One string, each path between spaces:
# a tuple would keep a tuple and a string object per path in the heap.
_PROBES = (" /generate_204 /gen_204 /hotspot-detect.html /library/test/success.html"
           " /connecttest.txt /ncsi.txt /redirect /canonical.html /success.txt ")


def handle(req, ctx):
    """The reply to `req`; ctx is the server (pairing.server.Server), which holds what
    the answers depend on besides the request, and the POST /ap accepted so far."""
    method, path, query, host, body, _, html = req
    if path == "/device":
        if method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD")
        return 200, device_body(ctx.s), http.JSON, ""
    if path == "/ap":
        if method != "POST":
            return _not_allowed("POST")
        return _post_ap(body, html, ctx)
    where = ctx.portal
    if where and ((" %s " % path) in _PROBES or (host and host.split(":")[0] != where.split(":")[0])):
        # a phone asking for the internet, or any name the portal's DNS sent here
        return 302, b"", http.HTML, "Location: http://%s/\r\n" % where
    if path == "/":
        if method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD")
        try:
            query = http.form(query)
        except ValueError:  # not ours (UnicodeError is one too): the page without prefills
            query = {}
        return 200, (portal.page, (ctx.s, ctx.networks, ctx.notice, query)), HTML, ""
    return 404, error_body(404, "no such path"), http.JSON, ""


def _not_allowed(allow):
    return 405, error_body(405, "use " + allow.split(",")[0]), http.JSON, "Allow: %s\r\n" % allow


def _post_ap(body, html, ctx):
    # a browser (the portal's form) gets pages, an app the seed's JSON
    try:
        pairing = parse_ap(body.strip())
    except ValueError as e:
        return _refused(html, 400, e.args[0])
    if ctx.accepted is not None and ctx.accepted != pairing:
        # two phones, or a second tap: the first valid POST /ap wins, and a retry of it
        # is answered as it was
        return _refused(html, 409, "already pairing")
    ctx.accepted = pairing
    if html:
        return 200, (portal.joining, (ctx.s, pairing["ssid"])), HTML, ""
    return 200, OK, http.JSON, ""


def _refused(html, status, reason):
    if html:
        return status, (portal.refused, (reason,)), HTML, ""
    return status, error_body(status, reason), http.JSON, ""


def device_body(s):
    # formatted by hand: the seed's key order, no spaces, and no dict built per request
    return (
        '{"deviceid":"%s","apikey":"%s","chipid":"%s","accept":"post"}'
        % (s["deviceid"], s["apikey"], s["chipid"])
    ).encode()


def parse_ap(body):
    """Validate a POST /ap body (JSON whatever the Content-Type says, or a form).
    Returns {ssid, password[, server, port, token]}; raises ValueError(reason)."""
    d = _decode(body)
    ssid = d.get("hidden") or d.get("ssid", d.get("SSID"))  # the portal's field for a hidden network
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise ValueError("bad ssid")
    password = d.get("password", "")
    if not (isinstance(password, str) and password_ok(password)):
        raise ValueError("bad password")
    out: dict = {"ssid": ssid, "password": password}
    server = d.get("server")  # the portal's "host" or "host:port"
    if isinstance(server, str) and server:
        i = server.rfind(":")  # (no str.rpartition on the ESP8266: ports/esp8266/mpconfigport.h:28)
        host, port = (server, "") if i < 0 else (server[:i], server[i + 1:])
        d["serverName"] = host
        if port:
            d["port"] = port
    if "port" in d:
        out["port"] = _port(d["port"])
    if "serverName" in d:
        server = d["serverName"]
        if not (isinstance(server, str) and _host_ok(server)):
            raise ValueError("bad serverName")
        out["server"] = server
    token = d.get("token")
    if token is not None and token != "":
        if not (isinstance(token, str) and len(token) == 40 and _only(token, _digit_or_lower)):
            raise ValueError("bad token")
        out["token"] = token
    return out


def password_ok(p):
    """A Wi-Fi passphrase as routers take it: 8..63 bytes of UTF-8 without control
    characters, 64 hex digits (a raw PSK), or empty for an open network. The same
    rule for AP mode, the portal and touch mode."""
    n = len(p.encode())
    if n == 0:
        return True
    if n == 64 and len(p) == 64:
        return _only(p, _hex_digit)
    return 8 <= n <= 63 and _only(p, _not_control)


def _decode(body):
    if body.startswith(b"{"):
        import jsonobj  # on the first JSON body: a portal that only serves pages never needs it

        try:
            return jsonobj.loads(body)
        except ValueError:
            raise ValueError("bad json")
    try:
        return http.form(body.decode())
    except (ValueError, IndexError):
        raise ValueError("bad body")


def _only(text, test):
    for c in text:
        if not test(c):
            return False
    return True


def _digit_or_lower(c):
    return "0" <= c <= "9" or "a" <= c <= "z"


def _hex_digit(c):
    return "0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"


def _host_char(c):
    return _digit_or_lower(c) or "A" <= c <= "Z" or c == "-"


def _not_control(c):
    return c >= " " and c != "\x7f"


def _port(v):
    if isinstance(v, str) and http.digits(v):
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise ValueError("bad port")
    return v


def _host_ok(host):
    if not 1 <= len(host) <= 253:
        return False
    labels = host.split(".")
    if _only(host, lambda c: c == "." or "0" <= c <= "9"):
        # all digits: must be a dotted IPv4 literal
        return len(labels) == 4 and all(http.digits(l) and int(l) <= 255 and len(l) <= 3 for l in labels)
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-" or not _only(label, _host_char):
            return False
    return True
