"""The journey engine: stages, rules and policies as a pure step function."""
