"""Operators: their password hashes, and the port (with adapters) their credential comes from."""
