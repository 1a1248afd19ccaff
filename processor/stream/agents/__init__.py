"""The data path: ingest, the identity and journey handlers, and what they share."""
