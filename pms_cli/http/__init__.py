"""Shared HTTP layer: one client wrapper with auth, rate limiting, retries and redaction."""
