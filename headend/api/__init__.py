"""FastAPI read API of the head-end (OpenAPI at /docs)."""
