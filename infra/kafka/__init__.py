"""A real Apache Kafka broker (KRaft, one node) from Apache Kafka's jars on Maven Central."""
