# Runs firmware test modules on the MicroPython VM:
#   micropython tests/firmware/vmrun.py test_http [test_settings ...]
# Prints `PASS name` / `FAIL name: exc` per test, then `N passed, M failed`;
# exits 1 if any failed. The repository root is $ESPLINK_ROOT, else two levels up.
import os
import sys


def _abs(path):
    return path if path.startswith("/") else os.getcwd() + "/" + path


def _load_shim(name, path):
    # the VM's builtin `machine` wins over a machine.py on sys.path: run the
    # stand-in's source into a namespace and put that in sys.modules instead
    with open(path) as f:
        code = f.read()
    env = {"__name__": name}
    exec(code, env)

    class Module:
        pass

    mod = Module()
    for key in env:
        setattr(mod, key, env[key])
    sys.modules[name] = mod


def main(names):
    here = _abs(sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".")
    if here.endswith("/tests/firmware"):
        here = here[: -len("/tests/firmware")]
    else:
        here += "/../.."
    root = _abs(os.getenv("ESPLINK_ROOT") or here)  # tests change directory: keep paths absolute
    tests = root + "/tests/firmware"
    sys.path[:] = [tests, root + "/firmware", ".frozen", "/usr/lib/micropython"]
    for shim in ("machine", "network"):
        _load_shim(shim, root + "/tests/shims/" + shim + ".py")

    passed = failed = 0
    for modname in names:
        if modname.endswith(".py"):
            modname = modname.rsplit("/", 1)[-1][:-3]
        mod = __import__(modname)
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if not (name.startswith("test_") and callable(fn)):
                continue
            try:
                fn()
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %s %s" % (modname, name, type(e).__name__, e))
                sys.print_exception(e)
            else:
                passed += 1
                print("PASS %s.%s" % (modname, name))
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: vmrun.py test_module [...]")
        sys.exit(2)
    sys.exit(1 if main(sys.argv[1:]) else 0)
