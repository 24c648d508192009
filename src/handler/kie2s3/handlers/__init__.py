"""Handlers: event parsing and wiring for each event kind; no business logic lives here."""
