# Boots the virtual board: the stand-ins take the place of `network` and `machine`,
# then boot.py and main.py run from the flash directory as they would on a chip.
import sys

sys.path[0] = sys.argv[1]  # where the compiled stand-in is
import vboard

sys.modules["machine"] = vboard
sys.modules["network"] = vboard
sys.path[:] = ["", ".frozen", "lib"]  # a chip's path, relative to the flash directory

for script in ("boot.py", "main.py"):
    try:
        with open(script) as f:
            code = f.read()
    except OSError:
        continue
    exec(code, {"__name__": "__main__"})
    del code
