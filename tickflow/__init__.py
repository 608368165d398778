"""tickflow: a Kafka-native platform for real-time crypto trading research with reinforcement learning."""

__version__ = "0.1.0"
