# The captive portal's pages, read from flash (portal.html, joining.html, refused.html,
# beside this module; in the ROM partition with ROMFS) a line at a time: nothing the
# size of a page is built in RAM, and their texts are no string objects in the heap. In
# a page, a line that starts with "@" is a slot the code fills ("@networks"), and
# {ssid} and {ap} are replaced. Everything shown that came from outside (SSIDs, query
# parameters) is escaped, and no secret is ever shown.
import pairing
from pairing.http import split_once

# this package's directory: the ESP8266's build gives modules no __file__
# (ports/esp8266/mpconfigport.h:35), but a package its __path__, a str on MicroPython
# (py/builtinimport.c:498; a list on CPython, where the tests run too)
_DIR = (pairing.__path__ if isinstance(pairing.__path__, str) else list(pairing.__path__)[0]) + "/"


def page(s, networks, notice, query):
    """The page's chunks (bytes): networks are (ssid, rssi) pairs, strongest first;
    notice is the last attempt's outcome or None; query prefills the cloud fields."""
    server, token = query.get("server", ""), query.get("token", "")
    opened = b" open" if server or token else b""
    server, token = escape(server).encode(), escape(token).encode()
    with open(_DIR + "portal.html", "rb") as f:
        for line in f:
            if line[:1] != b"@":
                if b"{" in line:  # also every CSS rule: a few searches more per page
                    line = line.replace(b"{deviceid}", s["deviceid"].encode()).replace(
                        b"{open}", opened).replace(b"{server}", server).replace(b"{token}", token)
                yield line
            elif line[1:].strip() == b"notice":
                if notice:
                    yield ('<p class="n">Last attempt: %s</p>\n' % escape(notice)).encode()
            else:  # @networks
                yield b'<select id="ssid" name="ssid">\n'
                for ssid, rssi in networks:
                    yield ('<option value="%s">%s (%s)</option>\n' % (escape(ssid), escape(ssid), _signal(rssi))).encode()
                if not networks:
                    yield b'<option value="">no network found: type its name below</option>\n'
                yield b"</select>\n"


def joining(s, ssid):
    """The answer to the portal's form once it was accepted (chunks)."""
    ssid, ap = escape(ssid).encode(), escape(ap_ssid(s)).encode()
    with open(_DIR + "joining.html", "rb") as f:
        for line in f:
            yield line.replace(b"{ssid}", ssid).replace(b"{ap}", ap)


def refused(reason):
    """The answer to a form that was not accepted (chunks). Its lines "@reason:text" say
    what a person can do about each refusal; "@" alone stands for a reason none
    explains (reasons are the handlers' own constant texts, never the request's)."""
    reason = reason.encode()
    told = False
    with open(_DIR + "refused.html", "rb") as f:
        for line in f:
            if line[:1] != b"@":
                yield line
                continue
            name, text = split_once(line[1:], b":")
            name = name.strip()
            if name == reason or not (name or told):
                told = True
                yield b"<p>" + (text.strip() or reason) + b"</p>\n"


def ap_ssid(s):
    return s["ap_ssid"] or "ITEAD-" + s["deviceid"]


def _signal(rssi):
    return "strong" if rssi >= -60 else "fair" if rssi >= -75 else "weak"


def escape(text):
    # for HTML, and "{" so that no value can spell a placeholder of the page; replace()
    # hands back the same string when there is nothing to replace (a table of pairs here
    # would be tuples kept in the heap)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;").replace("'", "&#39;").replace("{", "&#123;")
