"""The sync engine: fetch pages → map → batch upsert → advance cursor, emitting events."""
