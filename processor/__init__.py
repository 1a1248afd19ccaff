"""touchpoint-processor: a Kafka-native customer journey engine."""

__version__ = "0.1.0"
