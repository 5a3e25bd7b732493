"""``event-gateway`` (also ``python -m gateway``): ``serve`` runs the gateway; ``plugin ...`` helps
write plugins (see :mod:`gateway.plugin_cli`); ``tail`` prints a running gateway's events live (see
:mod:`gateway.tail_cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.settings import SettingsError, add_serve_arguments, settings_from_args

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="event-gateway",
        description="An event router compatible with the Serverless Event Gateway, with WebAssembly plugins.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="run the Events API and the Config API",
        description="Run the Events API and the Config API. Every flag can also be set with an "
                    "EVENT_GATEWAY_<FLAG> environment variable (e.g. EVENT_GATEWAY_EVENTS_PORT=8080); "
                    "flags win.")
    add_serve_arguments(serve)
    from gateway.plugin_cli import add_plugin_commands
    add_plugin_commands(commands)
    from gateway.tail_cli import add_tail_command
    add_tail_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            settings = settings_from_args(args)
        except SettingsError as exc:
            parser.error(str(exc))
        from gateway.server import run  # imported late: `plugin` commands need no server stack
        return run(settings)
    if args.command == "tail":
        from gateway.tail_cli import run as run_tail
        return run_tail(args)
    from gateway.plugin_cli import run as run_plugin_command
    return run_plugin_command(args)


if __name__ == "__main__":
    sys.exit(main())
