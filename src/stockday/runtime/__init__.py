"""What every service runs on: settings, the composition root, logs, tracing, resilience,
the consumer loop and the web middleware."""
