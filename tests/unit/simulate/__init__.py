"""Unit tests of the traffic simulator, the demo summary and the operator tools."""
