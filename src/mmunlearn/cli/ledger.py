"""``mmunlearn ledger show|verify``: read and check a run's deletion ledger."""

from __future__ import annotations

import sys

import click

from mmunlearn.cli.common import run_dir_argument


@click.group("ledger")
def ledger_group() -> None:
    """The deletion ledger of a run: list its entries, or verify its hash chain."""


@ledger_group.command("show")
@run_dir_argument
def ledger_show(run_dir) -> None:
    """One line per processed request: time, request, method, child."""
    from mmunlearn.workflow.ledger import _field, read_ledger

    for n, e in enumerate(read_ledger(run_dir), start=1):
        click.echo(f"{n:4d}  {e.get('time')}  request {str(_field(e, 'request', 'hash'))[:12]}  "
                   f"{e.get('method')}  child {_field(e, 'child', 'path')} "
                   f"({str(_field(e, 'child', 'hash'))[:12]})" + ("  forced" if e.get("forced") else ""))


@ledger_group.command("verify")
@run_dir_argument
def ledger_verify(run_dir) -> None:
    """Check every entry's hash, the chain between entries and the head; exit 1 naming each bad line."""
    from mmunlearn.checkpoint import read_meta
    from mmunlearn.workflow.ledger import ledger_path, verify_ledger

    parent_hash = read_meta(run_dir)["weights_sha256"]
    rep = verify_ledger(run_dir, parent_hash=parent_hash)
    path = ledger_path(run_dir)
    for note in rep.notes:
        click.echo(f"note: {note}")
    for problem in rep.problems:
        click.echo(f"{path}: {problem}", err=True)
    if rep.entries == 0 and not rep.problems:
        click.echo(f"{path}: no entries (nothing to verify)")
        return
    if rep.ok:
        click.echo(f"{path}: OK, {rep.verified} chained entr{'y' if rep.verified == 1 else 'ies'} verified"
                   + (f", {rep.legacy} legacy (unverifiable)" if rep.legacy else ""))
        return
    if not rep.problems:
        click.echo(f"{path}: NOT VERIFIED: all {rep.entries} entries predate the hash chain", err=True)
    else:
        click.echo(f"{path}: TAMPERED or damaged: {len(rep.problems)} problem(s) in {rep.entries} entries",
                   err=True)
    sys.exit(1)


COMMANDS = [ledger_group]
