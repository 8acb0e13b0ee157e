"""stock-symbol's routes, one module per resource."""
