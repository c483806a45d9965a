"""Use cases written against the ports; no env, no clients, no HTTP."""
