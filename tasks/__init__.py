"""Prefect tasks: thin wrappers that give the domain functions retries, tags and logging."""
