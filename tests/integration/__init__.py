"""Tests against a real broker and a real worker process."""
