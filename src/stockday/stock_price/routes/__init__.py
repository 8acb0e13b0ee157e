"""stock-price's routes, one module per resource."""
