"""Local infrastructure: the Apache Kafka broker tickflow starts itself."""
