"""Per-client rate limits and quotas on a store every replica shares (see limiter.py)."""
