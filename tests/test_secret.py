"""Secrets reach the tools without a command line: option, file, environment, prompt."""
import argparse
import io
import subprocess
import sys

import pytest

from esplink import CommandError, secret


def parse(argv, required=True):
    p = argparse.ArgumentParser()
    secret.add_option(p, "--password", "ESPLINK_TEST_SECRET", "the Wi-Fi password", required=required)
    return p.parse_args(argv)


def test_the_option_then_the_file_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPLINK_TEST_SECRET", "from env")
    (tmp_path / "pw").write_text("from file\nsecond line\n")
    assert secret.value(parse(["--password", "given"]), "password") == "given"
    assert secret.value(parse(["--password-file", str(tmp_path / "pw")]), "password") == "from file"
    assert secret.value(parse([]), "password") == "from env"
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\r\n"))
    assert secret.value(parse(["--password-file", "-"]), "password") == "from stdin"


def test_the_prompt_at_a_terminal_and_a_clear_error_elsewhere(monkeypatch):
    monkeypatch.delenv("ESPLINK_TEST_SECRET", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "typed")
    assert secret.value(parse([]), "password") == "typed" and asked == ["the Wi-Fi password: "]
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match=r"the Wi-Fi password is missing: put it in \$ESPLINK_TEST_SECRET"):
        secret.value(parse([]), "password")
    assert secret.value(parse([], required=False), "password") is None


def test_an_unreadable_file_names_the_file_not_the_secret(tmp_path):
    with pytest.raises(CommandError, match="cannot read the Wi-Fi password from .*nope: FileNotFoundError"):
        secret.value(parse(["--password-file", str(tmp_path / "nope")]), "password")


def test_help_says_where_else_a_secret_can_come_from():
    p = argparse.ArgumentParser()
    secret.add_option(p, "--password", "ESPLINK_TEST_SECRET", "the Wi-Fi password")
    text = p.format_help()
    assert "$ESPLINK_TEST_SECRET" in text and "--password-file" in text and "other users can read" in text


@pytest.mark.parametrize("argv, env, flag", [
    (["pair", "ap"], "ESPLINK_WIFI_PASSWORD", "--password"),
    (["pair", "touch"], "ESPLINK_WIFI_PASSWORD", "--password"),
    (["board", "run"], "ESPLINK_DEVICE_KEY", "--device-key"),
])
def test_every_command_that_takes_a_secret_says_so_in_its_help(argv, env, flag):
    done = subprocess.run([sys.executable, "-m", "esplink.cli", *argv, "--help"], capture_output=True, text=True)
    text = " ".join(done.stdout.split())  # argparse wraps lines
    assert done.returncode == 0 and f"${env}" in text and f"{flag}-file" in text, done.stdout
