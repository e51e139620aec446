"""CSMS shared code: OCPP protocol layer, bus, database, settings and logging."""
