"""Entry point of the logo-resizer consumer: `python -m stockday.logo_resizer [--health-port N]`."""

from stockday.logo_resizer.consumer import run
from stockday.runtime.entrypoint import main

main("logo-resizer", run)
