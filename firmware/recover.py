# Boot-time only: the settings read back from flash, checked and recovered, and the
# identity and device key kept where a damaged settings.json cannot take them. App
# drops this module once the settings are in RAM: its code never shares the heap with
# a world's.
#
# settings.json is written whole to a temp file and renamed into place (both ports
# format littlefs, where the rename is atomic: a power cut leaves the old or the new
# file). Read back, it is refused by its size before a byte reaches the heap, parsed
# strictly (jsonobj), and taken field by field, each of the type its default has.
#
# The identity (deviceid, apikey, chipid) and the cloud's device key are kept in two
# copies, "identity" and "identity.bak", each a SHA-256 prefix and the body it sums.
# They are written once (first boot; again only when flashing brings a new device key),
# copy 1 complete before copy 2 is touched, so a power cut or a changed byte leaves one
# copy that verifies, and a boot that finds the other damaged or stale rewrites it from
# that one. settings.json's mirror of the identity is read only when neither copy
# verifies, or before any was made (the first boot, or a board older firmware set up).
#
# The device key reaches the board through settings.json: tools/flash.sh and the
# virtual board write {"device_key": ...} there before the first boot. The boot moves
# it into the copies and settings.save never writes it back, so a device key found in
# settings.json is always one that flashing put there (a damaged byte cannot make one)
# and replaces the copies' key.
#
# Hashes: hashlib.sha256 is on both ports (py/mpconfig.h:1749-1750 defaults it on;
# ports/esp8266/mpconfigport.h:14 sets the extra-features level that enables hashlib);
# binascii.crc32 is not (ports/esp8266/mpconfigport.h:41 turns it off).
import hashlib
import json
import os

from micropython import const

import jsonobj
import settings

COPIES = ("identity", "identity.bak")
IDENTITY = ("deviceid", "apikey", "chipid", "device_key")
# settings.json is under 1 KB (a POST /ap body is at most 512 B); anything larger is
# damage, refused by its size before a byte of it reaches the heap
_MAX_BYTES = const(2048)
_KEY_MAX = const(64)  # the cloud's device keys are 40 hex digits: a longer one is damage
_SUM = const(16)  # hex digits of SHA-256 in front of an identity copy


def load(platform="esp8266", seed=None):
    """Settings from flash merged over defaults, the identity and device key from their
    copies. A value of the wrong type is ignored and a damaged settings.json is
    ignored whole, so damage brings back defaults, never a crash; what was lost is
    logged by name, never by value. With `seed` (station MAC, unique id, 16 random
    bytes) the boot makes what identity is missing and writes back what it recovered:
    the copies first, then settings.json if it does not say exactly this."""
    s = settings.defaults(platform)
    saved = _read(settings.FILE)
    if saved:
        _remove(settings.TMP)  # a save that stopped before its rename
    else:
        # settings.json missing or unreadable: a complete temp copy is the best there is
        # (FAT renames by deleting the target first)
        tmp = _read(settings.TMP)
        if tmp:
            os.rename(settings.TMP, settings.FILE)
            saved = tmp
    saved = saved or {}
    lost = []
    for key in s:
        if key in saved and type(saved[key]) is type(s[key]):
            s[key] = saved[key]
        elif key not in IDENTITY and (key in saved or "deviceid" in saved):
            lost.append(key)  # wrongly typed, or missing from a file the firmware wrote whole
    _identity(s, seed, lost)
    if lost:
        print("settings: lost", ", ".join(lost))
    if seed:
        settings.save(s, saved)
    return s


def _identity(s, seed, lost):
    # s holds what settings.json said; the copies win over its mirror, and a device key
    # there (only flashing writes one) wins over theirs
    copies = [_copy(name) for name in COPIES]
    kept = copies[0] or copies[1]  # copy 1 is written first: when both verify it is the newer
    flashed = s["device_key"]
    if len(flashed) > _KEY_MAX:
        flashed = s["device_key"] = ""
    if kept:
        for key, value in zip(IDENTITY, kept):
            s[key] = value
        if flashed and flashed != s["device_key"]:
            s["device_key"] = flashed
            print("identity: new device key from flashing")
    elif [] in copies:  # both damaged: what settings.json mirrors is all there is
        lost.extend(k for k in IDENTITY if not s[k])
    if seed:
        make_identity(s, *seed)
        ident = [s[k] for k in IDENTITY]
        for name, had in zip(COPIES, copies):
            if had != ident:  # missing, damaged or stale: written whole before the next one
                _copy(name, ident)


def _copy(name, ident=None):
    # Writes `ident` into the copy `name` when given, then reads the copy (so a write is
    # verified): [deviceid, apikey, chipid, device_key]; None if there is no such file,
    # [] if it does not verify.
    if ident:
        body = json.dumps(ident).encode()
        with open(name, "wb") as f:
            f.write(_sum(body))
            f.write(body)
    try:
        with open(name, "rb") as f:
            data = f.read(_MAX_BYTES)
    except OSError:
        return None
    body = data[_SUM:]
    try:
        if data[:_SUM] == _sum(body):
            return json.loads(body)  # the very bytes written: a list of 4 str
    except ValueError:
        pass
    print("identity:", name, "damaged")
    return []


def _sum(body):
    return _hex(hashlib.sha256(body).digest()[: _SUM // 2]).encode()


def make_identity(s, mac, uid, rand):
    """deviceid from the station MAC, apikey a UUID v4 from 16 random bytes."""
    if not s["deviceid"]:
        s["deviceid"] = "1000" + _hex(mac[-3:])
    if not s["apikey"]:
        b = bytearray(rand)
        b[6] = b[6] & 0x0F | 0x40
        b[8] = b[8] & 0x3F | 0x80
        h = _hex(b)
        s["apikey"] = "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
    if not s["chipid"]:
        s["chipid"] = _hex(uid)


def _hex(b):
    return "".join("%02x" % x for x in b)


def _read(path):
    # The dict in `path`; None if there is no such file, False if it is damaged or too
    # large. MemoryError too: whatever a damaged file holds, the board must boot.
    try:
        size = os.stat(path)[6]
    except OSError:
        return None
    try:
        if size <= _MAX_BYTES:
            with open(path, "rb") as f:
                return jsonobj.loads(f.read())
    except (OSError, ValueError, MemoryError):
        pass
    print("settings:", path, "unreadable (%d B); its settings lost" % size)
    return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
