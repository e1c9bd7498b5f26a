"""Portfolio in: import of a lender's export, and the deterministic demo portfolio."""

from campaigns.portfolio.importer import ImportReport, import_portfolio

__all__ = ["ImportReport", "import_portfolio"]
