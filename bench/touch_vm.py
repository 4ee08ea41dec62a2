# The ESP-Touch decoder (firmware/pairing/esptouch.py) on the MicroPython VM, fed
# streams of datagram lengths that CPython made with the phone's encoder (esplink.touch).
# Used by bench/touch.py and tests/test_esptouch_roundtrip.py:
#
#   micropython touch_vm.py feed   MODULES STREAMS   one line per stream (below)
#   micropython touch_vm.py heap   MODULES STREAMS   the decoder's heap figures
#   micropython touch_vm.py import MODULES           the heap `import pairing.esptouch` keeps
#
# MODULES: a directory holding pairing/esptouch.py or .mpy, or a ROMFS image (*.img),
# mounted at /rom as the virtual board does (bytecode runs in place, as on a chip).
# STREAMS: records of a little-endian uint32 count n, then n uint16 lengths padded with
# zeros to a multiple of 256 (so every read fills the whole buffer: no allocation).
#
# feed prints, per stream k:
#   S k done fed us_total us_max us_last total_len phone_ip bssid password ssid  (bytes: x + hex)
#   S k open fed us_total us_max                                                 (never done)
# fed = datagrams fed up to and including the one that completed the decoding; us_* the
# time in feed() (ticks_us around each call): in all, the slowest call, the completing call.
import array
import gc
import sys
import time

CHUNK = 256


def use_modules(where):
    if where.endswith(".img"):
        here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
        sys.path.append(here + "/../tools/esplink/board/standins")
        from runner import mount_rom  # as the virtual board mounts its ROM partition

        mount_rom(where, "/rom")
        sys.path[:] = ["/rom"]
    else:
        sys.path[:] = [where]


def hexs(b):
    return "x" + "".join("%02x" % x for x in b)  # "x" alone for b"": never an empty field


class Streams:
    def __init__(self, path):
        self.f = open(path, "rb")
        self.buf = array.array("H", bytes(2 * CHUNK))
        self.left = 0

    def next_stream(self):
        """The next stream's length count, or -1 at the end of the file."""
        head = self.f.read(4)
        if len(head) < 4:
            return -1
        self.left = head[0] | head[1] << 8 | head[2] << 16 | head[3] << 24
        return self.left

    def chunk(self):
        """Reads the next CHUNK lengths of this stream into self.buf; how many are real."""
        m = CHUNK if self.left > CHUNK else self.left
        if m:
            self.f.readinto(self.buf)
        self.left -= m
        return m

    def skip(self):
        while self.chunk():
            pass


def feed(Decoder, streams):
    k = 0
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
    while streams.next_stream() >= 0:
        d = Decoder()
        fed = us = us_max = 0
        done = False
        buf = streams.buf
        m = streams.chunk()
        while m and not done:
            for j in range(m):
                n = buf[j]
                t0 = ticks_us()
                done = d.feed(n)
                dt = ticks_diff(ticks_us(), t0)
                us += dt
                if dt > us_max:
                    us_max = dt
                if done:
                    fed += j + 1
                    break
            else:
                fed += m
                m = streams.chunk()
        streams.skip()
        if done:
            print("S %d done %d %d %d %d %d %s %s %s %s" % (
                k, fed, us, us_max, dt, d.total_len, d.phone_ip, hexs(d.bssid), hexs(d.password), hexs(d.ssid)))
        else:
            print("S %d open %d %d %d" % (k, fed, us, us_max))
        k += 1
        d = None
        gc.collect()


def feed_all(d, streams):
    """Feeds the stream next_stream() opened: how many lengths, negative if it never
    completed. Allocates nothing itself (readinto, small ints, no tuple returned)."""
    fed, buf = 0, streams.buf
    m = streams.chunk()
    while m:
        for j in range(m):
            fed += 1
            if d.feed(buf[j]):
                return fed
        m = streams.chunk()
    return -fed


def heap(Decoder, streams):
    # stream 0: a broadcast that never completes (one byte wrong); stream 1: one that does
    gc.collect()
    ds = [None] * 8
    gc.collect()
    before = gc.mem_alloc()
    for k in range(8):  # several, so the collector's granularity averages out
        ds[k] = Decoder()
    gc.collect()
    print("H object %d" % ((gc.mem_alloc() - before) // 8))
    ds = None
    d = Decoder()
    streams.next_stream()
    gc.collect()
    start = gc.mem_alloc()
    gc.disable()  # so that mem_alloc() counts every byte feed() allocates, even garbage
    fed = feed_all(d, streams)
    allocated = gc.mem_alloc() - start
    gc.enable()
    streams.skip()
    gc.collect()
    print("H broadcast %d %d %d %d" % (abs(fed), fed > 0, allocated, gc.mem_alloc() - start))
    d = None
    gc.collect()
    before = gc.mem_alloc()
    d = Decoder()
    streams.next_stream()
    gc.collect()
    made = gc.mem_alloc()
    fed = feed_all(d, streams)
    streams.skip()
    gc.collect()
    print("H done %d %d %d %d" % (abs(fed), fed > 0, gc.mem_alloc() - before, gc.mem_alloc() - made))


def import_cost():
    gc.collect()
    before = gc.mem_alloc()
    import pairing.esptouch  # noqa: F401

    gc.collect()
    print("I %d" % (gc.mem_alloc() - before))


def main():
    mode, where = sys.argv[1], sys.argv[2]
    use_modules(where)
    if mode == "import":
        import_cost()
        return
    from pairing.esptouch import Decoder

    streams = Streams(sys.argv[3])
    if mode == "feed":
        feed(Decoder, streams)
    else:
        heap(Decoder, streams)


main()
