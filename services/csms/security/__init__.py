"""Secrets: station passwords (argon2id) and operator API tokens (SHA-256 of random tokens)."""
