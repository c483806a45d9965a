"""Service tests over the local container."""
