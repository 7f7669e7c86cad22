"""Commissioning tools a field engineer runs on a gateway box: `askue probe` (read one meter
once) and `askue scan` (find the meters on a bus). They reuse the drivers' transports and
frames, and need nothing of the head-end."""
