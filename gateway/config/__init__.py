"""The configuration domain: what event types, functions, subscriptions and CORS settings are, and
the rules a change must pass before it reaches the store."""
