"""Checks of deploy/: compose file, Kubernetes manifests, generated resources, metric names."""
