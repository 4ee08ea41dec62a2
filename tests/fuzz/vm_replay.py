# Replays a corpus file through one driver of drive.py on the MicroPython VM:
#   micropython tests/fuzz/vm_replay.py DRIVER FILE
# FILE has a line per input: hex [# note], "-" for the empty input, "#" a comment line.
# Prints a line per input: "ok" and, for the jsonobj driver, the value in a form both
# ports print alike (see enc()); "refused" for an input jsonobj refuses; or
# "FAIL <exception>". The repository root is two levels up.
import sys

from binascii import hexlify, unhexlify


def _root():
    here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
    return here + "/../.."


def enc(v):
    # floats by their bits and strings by their UTF-8 bytes: repr differs between ports
    if v is None or v is True or v is False:
        return v
    if type(v) is int:
        return ["i", str(v)]
    if type(v) is float:
        import struct

        return ["f", hexlify(struct.pack("<d", v)).decode()]
    if type(v) is str:
        return ["s", hexlify(v.encode()).decode()]
    if type(v) is list:
        return ["l"] + [enc(x) for x in v]
    if type(v) is dict:
        return ["d"] + [[enc(k), enc(v[k])] for k in sorted(v)]
    return ["?", repr(v)]


def main(name, path):
    root = _root()
    sys.path[:] = [root + "/tests/fuzz", root + "/firmware", ".frozen", "/usr/lib/micropython"]
    import json

    import drive

    fn = drive.DRIVERS[name]
    with open(path) as f:
        for line in f:
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                got = fn(b"" if text == "-" else unhexlify(text))
            except Exception as e:
                print("FAIL %s %s" % (type(e).__name__, e))
                continue
            if name != "jsonobj":
                print("ok")
            elif got is None:
                print("refused")
            else:
                print("ok " + json.dumps(enc(got)))


main(sys.argv[1], sys.argv[2])
