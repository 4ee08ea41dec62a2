"""esplink host tools: the phone, the virtual board, the MicroPython VM and flashing."""
from pathlib import Path

# The checkout this package runs from (it is installed editable from the repo).
REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"


class CommandError(Exception):
    """A failure the user should read as one line, without a traceback."""
