import pytest

from board_driver import HOME, Board

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def make_board(tmp_path):
    boards = []

    def make(flash=None, wifi=HOME, **kw):
        b = Board(flash or tmp_path / "flash", wifi, **kw).start()
        boards.append(b)
        return b

    yield make
    for b in boards:
        b.stop()
        print(f"--- board {b.flash}:\n{b.log()}")  # shown by pytest when the test fails


@pytest.fixture
def board(make_board):
    b = make_board()
    b.expect(r"^mode: pair")
    b.expect(r"^led: pairing")
    return b


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium (./dev installs it), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()
