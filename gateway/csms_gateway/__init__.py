"""The OCPP gateway: holds the stations' WebSockets and relays their traffic over the bus."""
