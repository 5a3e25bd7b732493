"""Routing: which subscriptions an incoming event reaches, per space."""
