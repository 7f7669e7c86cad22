"""Abnormal events (нештатные ситуации): the catalogue of kinds, the operator's sentence
for each, and the service that lists, counts and moves them through their lifecycle."""
