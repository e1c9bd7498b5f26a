"""Prefect flows: one per stage of the ladder, and the daily campaign. Orchestration only."""
