"""The worker's HTTP surface: metrics, status and health."""
