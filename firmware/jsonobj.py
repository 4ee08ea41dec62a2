# One JSON object from bytes, exactly as RFC 8259 has it. MicroPython's json.loads is
# lax: {1e5} gives {}, [1 2] and {"a" 1} parse, b'{"a":' gives {}, overlong and surrogate
# UTF-8 pass; it keeps a list per nesting level (deep input is a MemoryError); it makes
# the escape pair \ud83c\udfe0 two 3-byte surrogates (CESU-8), not one 4-byte character;
# and 0e400 is nan (0 * 10**400). So the bytes are checked here in one pass, by index
# and without a copy, and only input that CPython's json.loads reads the same way gets
# to json.loads. Refusals are a ValueError with a fixed text, never the input.
#
# Policy, the same on every port (the tests run this module under CPython too):
# - the top level is an object: settings, POST /ap bodies and cloud frames all are;
# - UTF-8 without a byte order mark, whitespace only space, tab, CR and LF (RFC 8259);
# - at most _DEPTH nested containers and _VALUES values in the text (keys not counted,
#   a duplicate key's value counted): settings and frames nest 3 deep and the largest
#   frame, the activate reply, has ~80 values. Hostile input so never reaches
#   json.loads' stack nor fills a 38 KB heap with objects;
# - a lone surrogate escape (\ud800 not followed by \udc00..\udfff, or \udc00 alone) is
#   refused, wherever it is in the text: it has no UTF-8, and a str holding one could
#   not be encoded again (CPython makes one; MicroPython makes invalid UTF-8);
# - duplicate keys: the last one wins, as in CPython.
# Escape pairs and zeros with an exponent are rewritten into a copy (a raw 4-byte
# character, "0.0") before json.loads; floats are otherwise as precise as the port's
# parser (single precision on the chips; on the VM a double may be an ulp off CPython's).
import json

from micropython import const

_DEPTH = const(8)
_VALUES = const(256)
# what the scanner expects next
_VALUE = const(0)
_FIRST = const(1)  # just after { or [: a key or value, or the close
_KEY = const(2)  # after a comma in an object
_COLON = const(3)
_NEXT = const(4)  # after a value: a comma, or the close

_BAD = "bad JSON"


def loads(data):
    """The dict in `data` (bytes, bytearray or memoryview, read in place), which must be
    exactly one JSON object, whitespace around it allowed. Raises ValueError otherwise."""
    if _scan(data, None):
        out = bytearray()
        _scan(data, out)
        return loads(out)  # one level: the copy has nothing left to rewrite
    try:
        return json.loads(data)
    except TypeError:  # CPython's json takes no memoryview
        return json.loads(bytes(data))


def _scan(data, out):
    # Raises ValueError unless data is one valid object. Returns True, early, at the first
    # token MicroPython would misread when out is None; with a bytearray for out, checks it
    # all and writes data into out with those tokens rewritten.
    try:
        n = len(data)
        i = last = depth = values = objs = 0  # objs: bit d set when depth d is an object
        state = _VALUE
        while True:
            while i < n and data[i] in b" \t\n\r":
                i += 1
            if i == n:
                if depth or state != _NEXT:
                    raise ValueError(_BAD)
                if out is not None:
                    out += data[last:]
                return False
            c = data[i]
            if depth == 0 and (state == _NEXT or c != 0x7B):  # only one object, only an object
                raise ValueError(_BAD)
            close = 0x7D if objs >> depth & 1 else 0x5D
            if state == _NEXT or state == _FIRST and c == close:
                if c == close:
                    depth -= 1
                    state = _NEXT
                elif c == 0x2C and state == _NEXT:  # ,
                    state = _KEY if close == 0x7D else _VALUE
                else:
                    raise ValueError(_BAD)
                i += 1
                continue
            if state == _COLON:
                if c != 0x3A:
                    raise ValueError(_BAD)
                state = _VALUE
                i += 1
                continue
            key = close == 0x7D and state != _VALUE
            if key and c != 0x22:
                raise ValueError(_BAD)
            if not key:
                values += 1
                if values > _VALUES:
                    raise ValueError("JSON too large")
                if c == 0x7B or c == 0x5B:  # { [
                    depth += 1
                    if depth > _DEPTH:
                        raise ValueError("JSON too large")
                    objs = objs | 1 << depth if c == 0x7B else objs & ~(1 << depth)
                    state = _FIRST
                    i += 1
                    continue
            start = i
            state = _COLON if key else _NEXT
            if c == 0x22:  # a string
                i += 1
                while True:
                    c = data[i]
                    if c == 0x22:
                        i += 1
                        break
                    if c < 0x20:
                        raise ValueError(_BAD)
                    if c == 0x5C:  # backslash
                        c = data[i + 1]
                        if c != 0x75:  # not \u
                            if c not in b'"\\/bfnrt':
                                raise ValueError(_BAD)
                            i += 2
                            continue
                        u = _hex4(data, i + 2)
                        if 0xD800 <= u < 0xE000:  # a surrogate: only as the first of a pair
                            if u >= 0xDC00 or data[i + 6] != 0x5C or data[i + 7] != 0x75:
                                raise ValueError(_BAD)
                            lo = _hex4(data, i + 8)
                            if not 0xDC00 <= lo < 0xE000:
                                raise ValueError(_BAD)
                            if out is None:
                                return True
                            out += data[last:i]
                            out += chr(0x10000 + ((u - 0xD800) << 10) + lo - 0xDC00).encode()
                            last = i + 12
                            i += 6
                        i += 6
                    elif c < 0x80:
                        i += 1
                    else:  # UTF-8 as RFC 3629 has it: shortest form, no surrogates, <= U+10FFFF
                        if not 0xC2 <= c <= 0xF4:
                            raise ValueError(_BAD)
                        k = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
                        lo = 0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80
                        hi = 0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF
                        if not lo <= data[i + 1] <= hi:
                            raise ValueError(_BAD)
                        for j in range(i + 2, i + k + 1):
                            if data[j] & 0xC0 != 0x80:
                                raise ValueError(_BAD)
                        i += k + 1
            elif c == 0x2D or 0x30 <= c <= 0x39:  # a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
                i += c == 0x2D
                i = i + 1 if data[i] == 0x30 else _digits(data, i)
                if data[i] == 0x2E:  # .
                    i = _digits(data, i + 1)
                if data[i] | 0x20 == 0x65:  # e E
                    e = i
                    i += 1
                    if data[i] == 0x2B or data[i] == 0x2D:
                        i += 1
                    i = _digits(data, i)
                    for j in range(start, e):
                        if 0x31 <= data[j] <= 0x39:
                            break
                    else:  # all zeros: ±0.0, whatever the exponent
                        if out is None:
                            return True
                        out += data[last:start]
                        out += b"-0.0" if data[start] == 0x2D else b"0.0"
                        last = i
            else:
                lit = b"true" if c == 0x74 else b"false" if c == 0x66 else b"null"
                for c in lit:
                    if data[i] != c:
                        raise ValueError(_BAD)
                    i += 1
    except IndexError:  # ran off the end: the object is cut short
        raise ValueError(_BAD)


def _hex4(data, i):
    u = 0
    for i in range(i, i + 4):
        c = data[i]
        if 0x30 <= c <= 0x39:
            c -= 0x30
        elif 0x61 <= c | 0x20 <= 0x66:  # a-f A-F
            c = (c | 0x20) - 0x57
        else:
            raise ValueError(_BAD)
        u = u << 4 | c
    return u


def _digits(data, i):
    # past a run of at least one digit; a number never ends the data (the object's close
    # follows), so running off the end is an IndexError, and bad
    j = i
    while 0x30 <= data[j] <= 0x39:
        j += 1
    if j == i:
        raise ValueError(_BAD)
    return j


def object_end(data):
    """The index just past the "}" that closes the first "{", or -1 (braces counted,
    strings skipped, nothing else checked: loads() does that)."""
    depth = 0
    in_string = escaped = False
    for i, c in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:  # "
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 123 or c == 91:  # { [
            depth += 1
        elif c == 125 or c == 93:  # } ]
            depth -= 1
            if depth == 0:
                return i + 1
    return -1
