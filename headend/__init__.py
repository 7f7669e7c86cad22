"""askue head-end: ingest, storage, VEE, exports and the read API."""
