"""OCPP 2.0.1 JSON protocol layer: framing, error codes, schema validation. Pure, no I/O."""
