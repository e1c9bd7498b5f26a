"""Run records: one ``campaign_runs`` row per stage run (started, finished, what it did), and the summaries made
from the attempt log for tables, Prefect artifacts and the daily run's table.

``records``: start, finish and read the rows. ``summaries``: a run's tally and its rows for people. The
effectiveness review (``campaigns.review``) is a different question, "what works", and reads outcomes instead.
"""
