"""The `esplink` command: one entry point, one subcommand per tool."""
import argparse
import importlib
import sys

from esplink import CommandError

# subcommand -> module that defines register(subparsers) and the handlers
COMMANDS = {
    "vm": "esplink.vm",
    "board": "esplink.board.cli",
    "pair": "esplink.pair",
    "demo": "esplink.demo",
    "cloud": "esplink.cloud.cli",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="esplink", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(module).register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except CommandError as e:
        print(f"esplink: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
