"""VEE: validation, estimation and editing of metered values, and the abnormal-event
(нештатные ситуации) lifecycle.

The rule engine (`rules/`, `engine.py`, `estimate.py`) is pure: no database, no I/O,
so the live path (batch hook, periodic scan) and the offline checker (`askue vee check`)
run exactly the same code on the same dataclasses (`model.py`).
"""
