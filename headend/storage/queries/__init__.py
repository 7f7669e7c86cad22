"""Read queries shared by the API and others (all parameterised with %s)."""
