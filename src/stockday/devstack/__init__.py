"""The local stack: supervisor, HAProxy configuration, process inspection, status, emulator."""
