"""Simulated meters: the physics (registers, profile, journal, clock, relay) shared by every protocol simulator, fault injection, and the fleet runner."""
