"""Collection Campaigns: the domain library.

Plain Python with no Prefect import: everything that decides anything lives
here. `tasks/` wraps these functions for Prefect and `flows/` orchestrates them.
"""

__version__ = "0.1.0"
