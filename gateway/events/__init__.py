"""Incoming events: CloudEvents maps, request parsing and the gateway's own system events."""
