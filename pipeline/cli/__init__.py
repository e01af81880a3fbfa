"""The ``complaints`` command line: argument parsing and one-line errors over the packages above."""

from pipeline.cli.app import app, main  # noqa: F401  the console script is pipeline.cli:main
