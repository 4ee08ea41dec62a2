# Helpers for the firmware tests. They run under CPython (pytest) and on the
# MicroPython VM (tests/firmware/vmrun.py), so: no pytest, no tempfile, no os.path.
import os


def raises(exc_type, fn, *args):
    """Call fn(*args), which must raise exc_type; return the exception."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def _is_dir(path):
    return os.stat(path)[0] & 0x4000 != 0


def _rmtree(path):
    for name in os.listdir(path):
        child = path + "/" + name
        if _is_dir(child):
            _rmtree(child)
        else:
            os.remove(child)
    os.rmdir(path)


class fresh_dir:
    """`with fresh_dir():` runs the block in a new empty directory, removed after."""

    def __enter__(self):
        self.old = os.getcwd()
        base = os.getenv("TMPDIR") or "/tmp"
        while True:
            path = "%s/esplink-fw-%s" % (base, "".join("%02x" % b for b in os.urandom(4)))
            try:
                os.mkdir(path)
                break
            except OSError:  # taken: draw again
                pass
        self.path = path
        os.chdir(path)
        return path

    def __exit__(self, *exc):
        os.chdir(self.old)
        _rmtree(self.path)
        return False


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
