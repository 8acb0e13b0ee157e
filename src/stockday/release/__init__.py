"""Release tooling: canary analysis from the services' own metrics."""
