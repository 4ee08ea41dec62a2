# The captive portal's pages. The page at / is read from flash (portal.html, beside
# this module; in the ROM partition with ROMFS) a line at a time, and a line that
# names a part ("@networks") is replaced by it: nothing the size of the page is built
# in RAM. Everything shown that came from outside (SSIDs, query parameters) is
# escaped, and no secret is ever shown.
_TEMPLATE = __file__.rsplit("/", 1)[0] + "/portal.html" if "/" in __file__ else "portal.html"
_REASONS = {  # what a person can do about each refusal of POST /ap
    "bad ssid": "Choose a network, or type a hidden network's name (1 to 32 bytes).",
    "bad password": "A Wi-Fi password has 8 to 63 characters (or 64 hex digits); leave it empty for an open network.",
    "bad serverName": "The cloud server should be a host name or an IPv4 address, optionally with :port.",
    "bad port": "The cloud server's port should be a number from 1 to 65535.",
    "bad token": "A pairing token has 40 characters, digits and lowercase letters; leave it empty if you have none.",
    "already pairing": "The device is already joining the network another request gave it.",
}


def page(s, networks, notice, query):
    """The page's chunks (bytes): networks are (ssid, rssi) pairs, strongest first;
    notice is the last attempt's outcome or None; query prefills the cloud fields."""
    with open(_TEMPLATE, "rb") as f:
        for line in f:
            if line[:1] != b"@":
                yield line
                continue
            name = line[1:].strip()
            if name == b"device":
                yield ("<p>Device <b>%s</b></p>\n" % s["deviceid"]).encode()
            elif name == b"notice":
                if notice:
                    yield ('<p class="n">Last attempt: %s</p>\n' % escape(notice)).encode()
            elif name == b"networks":
                yield b'<select id="ssid" name="ssid">\n'
                for ssid, rssi in networks:
                    yield ('<option value="%s">%s (%s)</option>\n' % (escape(ssid), escape(ssid), _signal(rssi))).encode()
                if not networks:
                    yield b'<option value="">no network found: type its name below</option>\n'
                yield b"</select>\n"
            elif name == b"cloud":
                server, token = query.get("server", ""), query.get("token", "")
                yield ('<details%s><summary>Cloud server and pairing token (optional)</summary>\n'
                       '<label for="server">Server</label><input id="server" name="server" value="%s"'
                       ' placeholder="host:8443" autocomplete="off">\n'
                       '<label for="token">Pairing token</label><input id="token" name="token" value="%s"'
                       ' maxlength="40" autocomplete="off">\n</details>\n'
                       % (" open" if server or token else "", escape(server), escape(token))).encode()


def joining(s, ssid):
    """The answer to the portal's form once it was accepted."""
    return _small("Joining %s" % escape(ssid),
                  "<p>The device now leaves this network and joins <b>%s</b>; your phone goes back to its "
                  "usual Wi-Fi.</p><p>If it joins, its LED stops blinking fast (steady once it reaches the "
                  "cloud). If the password was wrong or the network is out of reach, it comes back as "
                  "<b>%s</b> within half a minute, its LED blinking twice at a time: join it again and "
                  "open this page to see what happened.</p>" % (escape(ssid), escape(ap_ssid(s))))


def refused(reason):
    return _small("Not accepted", "<p>%s</p><p><a href=\"/\">Back</a></p>" % _REASONS.get(reason, reason))


def ap_ssid(s):
    return s["ap_ssid"] or "ITEAD-" + s["deviceid"]


def _small(title, body):
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            'content="width=device-width,initial-scale=1"><title>%s</title></head><body '
            'style="font:16px/1.45 system-ui,sans-serif;max-width:30em;margin:0 auto;padding:1em">'
            '<h1 style="font-size:1.3em">%s</h1>%s</body></html>' % (title, title, body)).encode()


def _signal(rssi):
    return "strong" if rssi >= -60 else "fair" if rssi >= -75 else "weak"


def escape(text):
    # replace() hands back the same string when there is nothing to replace; a table of
    # pairs here would be six tuples kept in the heap
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;").replace("'", "&#39;")
