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


class _ShowDefaults:
    """Help lines end with the option's default, unless the text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and "default" not in text and action.default not in (None, False, [])
                and action.default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _show_defaults(parser):
    """Every parser and subparser, whatever formatter it chose, shows defaults."""
    if not issubclass(parser.formatter_class, _ShowDefaults):
        parser.formatter_class = type("ShowDefaults", (_ShowDefaults, parser.formatter_class), {})
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _show_defaults(child)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="esplink", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(module).register(sub)
    _show_defaults(parser)
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
