"""The firmware uses nothing that MicroPython 1.25's ESP8266 build leaves out. The virtual
board runs Debian's unix port, which has every feature, so the VM cannot see this: the
ESP8266's ports/esp8266/mpconfigport.h (v1.25.0) turns these off, each on the line named
here. (The ESP32's build keeps them all.)"""
import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"

# a method or attribute, whatever it is called on
METHODS = {
    "center": "MICROPY_PY_BUILTINS_STR_CENTER (0), :27",
    "partition": "MICROPY_PY_BUILTINS_STR_PARTITION (0), :28 (str and bytes)",
    "rpartition": "MICROPY_PY_BUILTINS_STR_PARTITION (0), :28 (str and bytes)",
    "splitlines": "MICROPY_PY_BUILTINS_STR_SPLITLINES (0), :29",
    "indices": "MICROPY_PY_BUILTINS_SLICE_INDICES (0), :30",
}
# a module's attribute
MODULES = {
    "math": {**dict.fromkeys(("tau", "inf", "nan"), "MICROPY_PY_MATH_CONSTANTS (0), :36"),
             **dict.fromkeys(("erf", "erfc", "gamma", "lgamma"), "MICROPY_PY_MATH_SPECIAL_FUNCTIONS (0), :37"),
             "factorial": "MICROPY_PY_MATH_FACTORIAL (0), :38",
             "isclose": "MICROPY_PY_MATH_ISCLOSE (0), :39"},
    "sys": dict.fromkeys(("ps1", "ps2"), "MICROPY_PY_SYS_PS1_PS2 (0), :40"),
    "binascii": {"crc32": "MICROPY_PY_BINASCII_CRC32 (0), :41"},
    "random": dict.fromkeys(("randint", "randrange", "choice", "random", "uniform"),
                            "MICROPY_PY_RANDOM_EXTRA_FUNCS (0), :42"),
}
# a name
NAMES = {
    "complex": "MICROPY_PY_BUILTINS_COMPLEX (0), :25",
    "delattr": "MICROPY_PY_DELATTR_SETATTR (0), :26",
    "setattr": "MICROPY_PY_DELATTR_SETATTR (0), :26",
    "compile": "MICROPY_PY_BUILTINS_COMPILE (0), :31",
    "execfile": "MICROPY_PY_BUILTINS_EXECFILE (0), :32",
    "NotImplemented": "MICROPY_PY_BUILTINS_NOTIMPLEMENTED (0), :33",
    "__file__": "MICROPY_PY___FILE__ (0), :35 (modules have no __file__)",
}


def missing_on_esp8266(source, filename="<firmware>"):
    """What `source` uses that the ESP8266's build leaves out: [(line, use, why)]."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute):
            if node.attr in METHODS:
                found.append((node.lineno, "." + node.attr, METHODS[node.attr]))
            elif isinstance(node.value, ast.Name) and node.attr in MODULES.get(node.value.id, {}):
                found.append((node.lineno, f"{node.value.id}.{node.attr}", MODULES[node.value.id][node.attr]))
        elif isinstance(node, ast.Name) and node.id in NAMES:
            found.append((node.lineno, node.id, NAMES[node.id]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, complex):
            found.append((node.lineno, repr(node.value), NAMES["complex"]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "pow"
              and len(node.args) == 3):
            found.append((node.lineno, "pow(a, b, c)", "MICROPY_PY_BUILTINS_POW3 (0), :34"))
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for alias in node.names:
                if alias.name in MODULES[node.module]:
                    found.append((node.lineno, f"from {node.module} import {alias.name}",
                                  MODULES[node.module][alias.name]))
    return found


def test_the_firmware_uses_nothing_the_esp8266_build_leaves_out():
    files = sorted(FIRMWARE.rglob("*.py"))
    assert len(files) > 20
    found = [f"{path.relative_to(FIRMWARE)}:{line}: {use} ({why})"
             for path in files for line, use, why in missing_on_esp8266(path.read_text(), str(path))]
    assert not found, "\n".join(found)


def test_the_check_sees_each_of_them():
    # every use the table names is found, in the shapes firmware would write it
    uses = ["a, _, b = s.partition(':')", "s.rpartition(b'.')", "s.center(9)", "s.splitlines()",
            "slice(1, 2).indices(3)", "x = math.inf", "math.isclose(1, 1)", "math.factorial(3)",
            "math.gamma(2)", "sys.ps1", "binascii.crc32(b'')", "random.randint(1, 2)",
            "from random import choice", "delattr(m, 'a')", "setattr(m, 'a', 1)", "print(__file__)",
            "compile('1', 'f', 'eval')", "execfile('f')", "NotImplemented", "pow(2, 3, 5)", "x = 2j",
            "complex(1, 2)"]
    for use in uses:
        assert missing_on_esp8266(use), use
    # and what the build keeps is not
    kept = ["s.find(':')", "s.rfind('.')", "s.split(':', 1)", "math.sqrt(2)", "pow(2, 3)", "sys.path",
            "random.getrandbits(8)", "os.urandom(4)", "m.__dict__.pop('a', None)", "pkg.__path__",
            "binascii.hexlify(b'')"]
    for use in kept:
        assert not missing_on_esp8266(use), use
