"""The REST API (FastAPI); knows nothing about Lambda or uvicorn."""
