"""Contract tests: every adapter of a port behaves the same."""
