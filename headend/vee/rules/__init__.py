"""One module per rule. Each exposes `check(meter, values, ctx) -> Result`, pure."""
