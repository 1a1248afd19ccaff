"""Identity resolution: the graph and merging profiles."""
