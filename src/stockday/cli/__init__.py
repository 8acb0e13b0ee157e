"""The `stockday` command line."""

from stockday.cli.app import main

__all__ = ["main"]
