"""The streams layer: event-time bars and features (the Faust worker, offline builder, ksqlDB)."""
