# Boots the virtual board: the stand-ins take the place of `network` and `machine`,
# then boot.py and main.py run from the flash directory as they would on a chip.
import sys


def mount_rom(image):
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
    vfs.mount(vfs.VfsRom(rom), "/rom")


if __name__ == "__main__":  # bench/touch_vm.py imports mount_rom alone
    mount_rom(sys.argv[1] + "/romfs.img")
    sys.path[0] = sys.argv[1]  # where the compiled stand-in is
    import vboard

    sys.modules["machine"] = vboard
    sys.modules["network"] = vboard
    if vboard.CONFIG["smartconfig"]:
        import gc

        import smartconfig  # noqa: F401 - a C module on the chip: counted with the stand-ins

        gc.collect()
        vboard.heap_base = vboard.heap_peak = gc.mem_alloc()
    sys.path[:] = ["", ".frozen", "/rom", "/rom/lib", "lib"]  # a ROMFS chip's path

    for script in ("boot.py", "main.py"):
        try:
            with open(script) as f:
                code = f.read()
        except OSError:
            continue
        exec(code, {"__name__": "__main__"})
        del code
