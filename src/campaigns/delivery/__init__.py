"""Getting messages out exactly once: delivery, crash recovery, channel fallback, provider events, webhooks."""
