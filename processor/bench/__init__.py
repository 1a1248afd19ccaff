"""The benchmark: the processor against a raw aiokafka pipe, a naive Faust agent and Quix Streams.

`make bench` (`python -m processor.bench`) starts one embedded broker, generates a realistic
stream once (cached under `data/bench/`), publishes it to the inbound topics, and replays it to
each contestant in turn; see docs/performance.md for what is measured and how.
"""
