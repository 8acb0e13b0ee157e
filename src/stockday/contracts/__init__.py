"""The wire contract: pydantic models of the HTTP APIs and of the queue messages."""
