# GET /device and POST /ap as pure functions: request in, (status, body, pairing) out.
import jsonobj
from pairing.http import error_body

OK = b'{"error":0}'


def handle(method, path, body, s):
    """Answer one request with settings `s`. `pairing` is the validated POST /ap
    (a dict) when the device should go and join, else None."""
    if path == "/device":
        if method != "GET":
            return 405, error_body(405, "use GET"), None
        return 200, device_body(s), None
    if path == "/ap":
        if method != "POST":
            return 405, error_body(405, "use POST"), None
        try:
            pairing = parse_ap(body)
        except ValueError as e:
            return 400, error_body(400, e.args[0]), None
        return 200, OK, pairing
    return 404, error_body(404, "no such path"), None


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
    ssid = d.get("ssid", d.get("SSID"))
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        raise ValueError("bad ssid")
    password = d.get("password", "")
    if not (isinstance(password, str) and _password_ok(password)):
        raise ValueError("bad password")
    out: dict = {"ssid": ssid, "password": password}
    if "port" in d:
        out["port"] = _port(d["port"])
    if "serverName" in d:
        server = d["serverName"]
        if not (isinstance(server, str) and _host_ok(server)):
            raise ValueError("bad serverName")
        out["server"] = server
    if "token" in d:
        token = d["token"]
        if not (isinstance(token, str) and len(token) == 40 and _only(token, _digit_or_lower)):
            raise ValueError("bad token")
        out["token"] = token
    return out




def _decode(body):
    body = body.strip()
    if body.startswith(b"{"):
        try:
            return jsonobj.loads(body)
        except ValueError:
            raise ValueError("bad json")
    try:
        return _form(body.decode())
    except (ValueError, IndexError):
        raise ValueError("bad body")


def _form(text):
    # application/x-www-form-urlencoded, as a browser form sends it
    d = {}
    for pair in text.split("&"):
        key, value = pair.split("=", 1)
        d[_unquote(key)] = _unquote(value)
    return d


def _unquote(text):
    raw = bytearray()
    parts = text.replace("+", " ").split("%")
    raw.extend(parts[0].encode())
    for part in parts[1:]:
        if len(part) < 2 or not _only(part[:2], _hex_digit):
            raise ValueError
        raw.append(int(part[:2], 16))
        raw.extend(part[2:].encode())
    return bytes(raw).decode()


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


def _printable(c):
    return " " <= c <= "~"


def _password_ok(p):
    n = len(p)
    if n == 0:  # open network
        return True
    if n == 64:  # a raw PSK
        return _only(p, _hex_digit)
    # WPA passphrases are printable ASCII
    return 8 <= n <= 63 and _only(p, _printable)


def _port(v):
    if isinstance(v, str) and v.isdigit():
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
        return len(labels) == 4 and all(l.isdigit() and int(l) <= 255 and len(l) <= 3 for l in labels)
    for label in labels:
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-" or not _only(label, _host_char):
            return False
    return True
