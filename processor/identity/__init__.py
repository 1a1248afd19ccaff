"""Identity resolution: which person an event belongs to."""
