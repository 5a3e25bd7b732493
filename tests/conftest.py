"""Suite-wide pytest configuration."""

pytest_plugins = ["tests.gateway_fixtures"]
