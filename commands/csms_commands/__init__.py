"""The commands service: the operators' HTTP API."""
