# Boots the virtual board: the stand-ins take the place of what the VM lacks or has
# differently from the chip (`machine`, `network`, `socket`, `tls`, the frozen
# `ntptime`), then boot.py and main.py run from the flash directory as on a chip.
#
#     micropython runner.py STATE_DIR [PRELUDE]
import sys


def mount_rom(image, at):
    # A chip maps its ROM partition into the address space; here the image goes into
    # memory from libc, outside the GC heap, so bytecode runs in place as on the chip.
    import ffi
    import os
    import uctypes
    import vfs

    size = os.stat(image)[6]
    rom = uctypes.bytearray_at(ffi.open("libc.so.6").func("p", "malloc", "i")(size), size)
    with open(image, "rb") as f:
        f.readinto(rom)
    vfs.mount(vfs.VfsRom(rom), at)


def boot(state, prelude=None):
    mount_rom(state + "/romfs.img", "/rom")
    mount_rom(state + "/standins.img", "/standins")
    sys.path[:] = ["/standins"]
    import tls  # noqa: F401 - the VM's own, for vtls, before its name is taken
    import vboard
    import vmachine
    import vnetwork
    import vsocket
    import vtls

    sys.modules.update(machine=vmachine, network=vnetwork, socket=vsocket, tls=vtls)
    vnetwork.WLAN(vnetwork.STA_IF), vnetwork.WLAN(vnetwork.AP_IF)  # static C objects on a chip: part of the base
    # a ROMFS chip's path, with the stand-ins where the chip has its frozen modules
    sys.path[:] = ["", ".frozen", "/standins", "/rom", "/rom/lib", "lib"]
    if prelude:
        with open(prelude) as f:
            exec(f.read(), {"__name__": "__prelude__"})
    vboard.settle()
    for script in ("boot.py", "main.py"):
        try:
            with open(script) as f:
                code = f.read()
        except OSError:
            continue
        exec(code, {"__name__": "__main__"})
        del code


if __name__ == "__main__":  # bench/touch_vm.py imports mount_rom alone
    boot(*sys.argv[1:3])
