# One JSON object from bytes, refusing what MicroPython's json.loads lets through:
# it returns {} for b'{"a":' and a partial dict for any object cut short.
import json


def loads(data):
    """The dict in `data`, which must be exactly one complete JSON object
    (whitespace around it allowed). Raises ValueError otherwise."""
    data = data.strip()
    if not data.startswith(b"{") or object_end(data) != len(data):
        raise ValueError("incomplete JSON object")
    return json.loads(data)  # UnicodeError is a ValueError too


def object_end(data):
    """The index just past the "}" that closes the first "{", or -1."""
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
