"""Looking back: run records and their summaries."""
