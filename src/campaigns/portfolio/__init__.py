"""Portfolio in: import of a lender's export, and the deterministic demo portfolio."""

from campaigns.portfolio.importer import ImportReport, RowError, import_portfolio, read_portfolio_file

__all__ = ["ImportReport", "RowError", "import_portfolio", "read_portfolio_file"]
