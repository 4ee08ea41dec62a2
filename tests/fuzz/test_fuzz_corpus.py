"""The corpus (tests/firmware/corpus/DRIVER.txt: inputs seeded by tests/fuzz/run.py, and
every failure it ever found) replayed through tests/fuzz/drive.py: under CPython with the
CPython-only checks too (props.check), and on the 32-bit MicroPython VM, where the same
drivers run on the firmware as the chips have it. tests/test_json_differential.py also
compares jsonobj's values between the two."""
import subprocess

import pytest

import props
from esplink import vm

NAMES = sorted(props.GENERATORS)


def test_every_driver_has_a_corpus():
    assert {p.stem for p in props.CORPUS.glob("*.txt")} == set(NAMES)
    for name in NAMES:
        assert len(props.read_corpus(name)) >= 40, name


@pytest.mark.parametrize("name", NAMES)
def test_corpus_under_cpython(name):
    for data in props.read_corpus(name):
        props.check(name, data)


@pytest.mark.parametrize("name", NAMES)
def test_corpus_on_the_vm(name):
    argv = vm.micropython() + ["-X", "heapsize=256k", str(props.ROOT / "tests" / "fuzz" / "vm_replay.py"), name,
                               str(props.CORPUS / f"{name}.txt")]
    p = subprocess.run(argv, cwd=props.ROOT, capture_output=True, timeout=300)
    lines = p.stdout.decode("ascii", "backslashreplace").splitlines()
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert len(lines) == len(props.read_corpus(name))
    failed = [(i, line) for i, line in enumerate(lines) if not (line == "ok" or line == "refused" or line.startswith("ok "))]
    assert not failed, f"{len(failed)} inputs fail on the VM, first: {failed[:5]}"
