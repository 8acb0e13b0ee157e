"""One typed async client per HTTP API, speaking the models of stockday.contracts."""
