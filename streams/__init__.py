"""The streams layer: event-time bars and features (Faust agents, offline builder, ksqlDB)."""
