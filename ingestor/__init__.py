"""The ingestor: exchange websockets and replays of recorded or historical data into market.trades."""
