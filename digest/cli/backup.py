"""`digest backup PATH`: an online copy of the SQLite database, and what else to keep."""

from __future__ import annotations

from pathlib import Path

import click

from digest.backup import backup_sqlite
from digest.cli.common import chosen_config, config_option, say
from digest.config import Settings, load


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
# Settings only, no App: a backup must work on a database whose schema is older than
# this version, which is when it is taken (before `digest init` upgrades it).
@config_option
def backup(path: Path, config_path: str | None) -> None:
    """Copy the SQLite database into the new file PATH, while digest runs.

    The copy is consistent (the database as it was when the copy began; writers go on
    meanwhile), checked with SQLite's integrity check, and readable by you alone (0600).
    On PostgreSQL it says which pg_dump command to run instead.
    """
    settings = load(chosen_config(config_path))
    done = backup_sqlite(settings["database.url"], path)
    say(f"Backed up {done.source} to {done.target} ({done.size:,} bytes, integrity ok, "
        "mode 0600).")
    say("Keep with it, or the copy is not enough to restore from:")
    for line in keep_also(settings):
        say(f"  - {line}")


def keep_also(settings: Settings) -> list[str]:
    """What a restore needs beside the database, for these settings."""
    data_dir = settings.path("data_dir")
    if settings.secret("DIGEST_SECRET_KEY"):
        key = ("the signing key DIGEST_SECRET_KEY (from the environment): links in mail "
               "already sent need it")
    else:
        key = (f"the signing key {data_dir / 'secret.key'}: links in mail already sent "
               "need it")
    config = (f"the settings file {settings.source}" if settings.source
              else "your settings (no settings file was read: defaults and environment)")
    return [key, config + ", and the environment's DIGEST_* variables",
            f"{data_dir / 'imports'}: the console imports' rejects files, if you want them"]
