"""The streaming shell: Faust app, tables, agents and timers."""
