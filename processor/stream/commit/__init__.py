"""The commit boundary: the checkpoint, a table's writes, record bundles, and the agents' units."""
