"""Secrets for the command line without putting them on it: every user on the machine
can read a process's arguments (/proc/PID/cmdline, ps), only its owner its environment
and their own files. Each secret option therefore also comes from an environment
variable, a file (`--x-file FILE`, `-` for stdin) or, at a terminal, a prompt."""
import getpass
import os
import sys
from pathlib import Path

from esplink import CommandError


def add_option(parser, flag, env, what, metavar="VALUE", required=True):
    """`--flag VALUE` and `--flag-file FILE`; the help names the env variable too."""
    dest = flag.lstrip("-").replace("-", "_")
    ways = f"${env}, {flag}-file or the prompt" if required else f"${env} or {flag}-file"
    parser.add_argument(flag, dest=dest, metavar=metavar,
                        help=f"{what}; better from {ways} (other users can read command lines)")
    parser.add_argument(f"{flag}-file", dest=f"{dest}_file", metavar="FILE",
                        help=f"{flag}'s value from FILE's first line ('-': stdin)")
    parser.set_defaults(**{f"_{dest}_secret": (env, what, required)})


def value(args, dest):
    """The secret `dest` from its option, its file, its env variable or a prompt, in
    that order; None if optional and absent; CommandError if required and absent."""
    env, what, required = getattr(args, f"_{dest}_secret")
    given = getattr(args, dest)
    if given is not None:
        return given
    path = getattr(args, f"{dest}_file")
    if path is not None:
        return _first_line(path, what)
    if env in os.environ:
        return os.environ[env]
    if required and sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    if required:
        raise CommandError(f"{what} is missing: put it in ${env} or a --{dest.replace('_', '-')}-file,"
                           " or run at a terminal")
    return None


def _first_line(path, what):
    try:
        text = sys.stdin.readline() if path == "-" else Path(path).read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeError) as e:
        raise CommandError(f"cannot read {what} from {path}: {e.__class__.__name__}") from None
    return text.rstrip("\r\n")
