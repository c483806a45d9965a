"""Composition roots: the object graph is built here, once per process."""
