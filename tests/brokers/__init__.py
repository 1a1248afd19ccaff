"""Real Kafka brokers for the test suite (Apache Kafka from Maven Central jars)."""
