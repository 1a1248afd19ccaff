"""Faust extensions: every Faust subclass the worker installs, and every private attribute of
Faust or aiokafka it relies on (`internals`), in one place.

- `consumer`: the worker's consumer and consumer thread (fetch waits, hand-over, seeks);
- `scheduler`: a fetch's records handed out oldest first;
- `recovery`: the table manager whose recovery reads the changelogs in bulk first;
- `membership`: the worker's place in its consumer groups kept across restarts;
- `internals`: typed functions for the private attributes.

tests/unit/test_extensions.py checks each of them on the installed Faust and aiokafka, so an
upgrade that removes one fails there; pyproject.toml pins faust-streaming to the tested range.
"""
