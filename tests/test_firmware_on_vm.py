"""The firmware unit tests in tests/firmware, run again on the real 32-bit MicroPython VM.

The same modules also run directly under CPython (pytest collects tests/firmware)."""
import re
import subprocess
from pathlib import Path

import pytest

from esplink import vm

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_TESTS = ROOT / "tests" / "firmware"
MODULES = sorted(p.stem for p in FIRMWARE_TESTS.glob("test_*.py"))


def defined_tests(module):
    source = (FIRMWARE_TESTS / f"{module}.py").read_text()
    return set(re.findall(r"^def (test_\w+)\(", source, re.M))


def test_there_are_firmware_tests():
    assert {"test_http", "test_handlers", "test_settings", "test_wifi_status",
            "test_espcloud_proto", "test_espcloud_session", "test_espcloud_actions",
            "test_esptouch"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_on_vm(module):
    argv = vm.micropython() + ["-X", "heapsize=256k", str(FIRMWARE_TESTS / "vmrun.py"), module]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    want = defined_tests(module)
    passed = set(re.findall(rf"^PASS {module}\.(\w+)$", p.stdout, re.M))
    summary = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert p.returncode == 0 and summary, f"VM exit {p.returncode}:\n{out}"
    # a runner that silently runs nothing (or skips some) must fail too
    assert passed == want, f"missing on the VM: {sorted(want - passed)}\n{out}"
    assert summary.groups() == (str(len(want)), "0"), out
