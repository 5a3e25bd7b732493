"""Seeing every event (issue 15): the record of one event's path, the live tail, and tracing."""
