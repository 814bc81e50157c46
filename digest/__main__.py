"""`python -m digest` runs the CLI."""

from digest.launch import run

run()
