"""Tests against a real HTTP server on 127.0.0.1 (uvicorn in a background thread)."""
