"""Entry point of the queue-worker consumer: `python -m stockday.queue_worker [--health-port N]`."""

from stockday.queue_worker.consumer import run
from stockday.runtime.entrypoint import main

main("queue-worker", run)
