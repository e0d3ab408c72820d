"""The ``mmunlearn`` command line: a thin layer that parses, calls one library function, prints.

Each command group lives in its own module; ``main`` turns any :class:`InputError` into one line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys

import click

from mmunlearn import __version__
from mmunlearn.errors import InputError


class _Main(click.Group):
    def invoke(self, ctx: click.Context):  # one-line errors for bad input, no traceback
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmunlearn")
def main() -> None:
    """Machine unlearning for multimodal recommenders: train, forget, audit, benchmark."""


def _register() -> None:
    from mmunlearn.cli import bench, data, ledger, stream, train, unlearn

    main.add_command(data.data)
    for module in (train, unlearn, bench, ledger, stream):
        for cmd in module.COMMANDS:
            main.add_command(cmd)


_register()
