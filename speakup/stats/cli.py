"""Statistics commands: ``flask --app speakup stats …``."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from speakup.extensions import db

stats_cli = AppGroup("stats", help="Workforce headcounts and national returns.")


@stats_cli.command("import-workforce")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
def import_workforce_command(csv_file: str) -> None:
    """Import headcounts (organisation_code,year,white,bme,not_stated): all rows or none."""
    from speakup.stats.workforce import WorkforceImportError, import_workforce

    try:
        result = import_workforce(Path(csv_file).read_bytes())
    except WorkforceImportError as exc:
        db.session.rollback()
        click.echo("The workforce file was not imported. Nothing was changed.", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    click.echo(f"workforce: {result.created} row(s) added, {result.updated} updated")


@stats_cli.command("national-return")
@click.argument("org_code")
@click.option("--period", required=True, help="Quarter, e.g. FY2026Q2")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write CSV here")
def national_return_command(org_code: str, period: str, out_path: str | None) -> None:
    """Print (or write) an organisation's national quarterly return as CSV."""
    from speakup.errors import SpeakupError
    from speakup.organisations.services import find_organisation
    from speakup.stats.national_return import CURRENT_VERSION, build_return, return_csv
    from speakup.stats.periods import parse_quarter

    try:
        org = find_organisation(org_code)
        quarter = parse_quarter(period)
    except (SpeakupError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "message", str(exc))) from None
    text = return_csv(org.code, quarter.key, build_return(org.id, quarter.key), CURRENT_VERSION)
    if out_path:
        Path(out_path).write_text(text)
        click.echo(f"written {out_path}")
    else:
        click.echo(text, nl=False)
