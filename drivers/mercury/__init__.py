"""Меркурий 230/234 (Incotex) protocol: frames, driver and simulator."""
