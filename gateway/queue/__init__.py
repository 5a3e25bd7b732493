"""Where accepted async deliveries wait: the delivery queue backends (memory, SQLite, NATS JetStream)."""
