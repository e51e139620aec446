"""The events-worker: consumes station-initiated messages and writes them to the database."""
