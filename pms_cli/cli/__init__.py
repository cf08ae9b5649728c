"""Typer commands: parse, call the library, render. No HTTP, no SQL here."""
