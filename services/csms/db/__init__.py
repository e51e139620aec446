"""The database layer: models, engine and sessions, repositories. Only this package touches SQL."""
