"""The frontend's routes, a module per resource."""
