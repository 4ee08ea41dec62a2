"""Makes the firmware importable under CPython: `import settings`, `import pairing.http`,
`import wifi` (whose `hw` needs the `machine`/`network` stand-ins in tests/shims)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# appended, not prepended: these directories never shadow an installed module
for _dir in (ROOT / "firmware", ROOT / "tests" / "shims", ROOT / "tests" / "firmware"):
    if str(_dir) not in sys.path:
        sys.path.append(str(_dir))
