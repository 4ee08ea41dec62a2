"""The chip models of the virtual board, tested with small VM scripts in the firmware's
place (main.py), booted by the board's own boot loop: what each chip does that the
VM would not (watchdogs, axTLS, lwIP's UDP, the ESP32's station, the board's DNS)."""
import shutil
import sys
import textwrap

import pytest

from esplink.board import deploy
from esplink.board.process import Process


@pytest.fixture(scope="session")
def flashed(tmp_path_factory):
    """One deploy of the firmware and the stand-ins (their ROM images), copied per test."""
    flash = tmp_path_factory.mktemp("template") / "flash"
    flash.mkdir()
    deploy.flash(flash)
    deploy.install_standins(flash)
    return flash


class Script:
    """A VM script booted on the model as the board's main.py; it ends the board by
    returning (boot_loop: "board: stopped (exit 0)")."""

    def __init__(self, flash, source, options):
        (flash / "boot.py").unlink(missing_ok=True)
        (flash / "main.py").write_text(textwrap.dedent(source))
        code = ("import sys; from esplink.board import deploy, process; "
                f"sys.exit(process.boot_loop({str(flash)!r}, deploy.Options(**{options!r})))")
        self.process = Process([sys.executable, "-c", code])

    def expect(self, pattern, timeout=15.0):
        return self.process.expect(pattern, timeout)

    def log(self):
        return self.process.log()

    def finish(self, timeout=30.0):
        """The board's whole output once the script has ended it."""
        self.process.expect(r"^board: stopped \(exit 0\)", timeout)
        return self.log()


@pytest.fixture
def run_script(flashed, tmp_path):
    started = []

    def run(source, **options):
        flash = tmp_path / f"flash{len(started)}"
        shutil.copytree(flashed, flash)
        script = Script(flash, source, options)
        started.append(script)
        return script

    yield run
    for script in started:
        script.process.stop()
        print(f"--- script board:\n{script.log()}")  # shown when the test fails
