"""The SQLite database the embedded adapters share."""
