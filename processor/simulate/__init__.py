"""Simulated customer traffic: personas from the seeds, a pure generator, and its publisher."""
