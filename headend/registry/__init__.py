"""The registry: organisations, houses, accounts, gateways and meters with dated parameters,
gateway bindings, acts and holds (services), and the CSV/xlsx imports over them."""
