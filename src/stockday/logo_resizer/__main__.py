"""Entry point of the logo-resizer consumer: `python -m stockday.logo_resizer [--health-port N]`."""

from stockday.consumers.entrypoint import main
from stockday.logo_resizer.consumer import run

main("logo-resizer", run)
