import pytest

from board_driver import HOME, Board


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
