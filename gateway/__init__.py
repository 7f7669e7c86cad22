"""askue gateway."""
