"""Entry point of the queue-worker consumer: `python -m stockday.queue_worker [--health-port N]`."""

from stockday.queue_worker.consumer import run
from stockday.runtime.entrypoint import main as run_consumer


def main(argv: list[str] | None = None) -> None:
    run_consumer("queue-worker", run, argv)


if __name__ == "__main__":
    main()
