"""Entry point of the logo-resizer consumer: `python -m stockday.logo_resizer [--health-port N]`."""

from stockday.logo_resizer.consumer import run
from stockday.runtime.entrypoint import main as run_consumer


def main(argv: list[str] | None = None) -> None:
    run_consumer("logo-resizer", run, argv)


if __name__ == "__main__":
    main()
