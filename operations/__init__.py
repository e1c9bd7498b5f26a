"""Operations on a long-lived Prefect server: its database, the work pool, deployments, alerts."""
