"""Kafka plumbing that is not Faust: topic declarations, admin, the embedded broker."""
