"""Entry point of the queue-worker consumer: `python -m stockday.queue_worker [--health-port N]`."""

from stockday.consumers.entrypoint import main
from stockday.queue_worker.consumer import run

main("queue-worker", run)
