"""Helpers for tests that need a broker or a running worker."""
