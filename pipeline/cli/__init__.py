"""The ``complaints`` command line: argument parsing and one-line errors over the packages above.
app (the commands, ``main``) · options (shared flags, settings, opening the store) · one module per command group."""

from pipeline.cli.app import app, main  # noqa: F401  the console script is pipeline.cli:main
