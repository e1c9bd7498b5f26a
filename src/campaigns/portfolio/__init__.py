"""Portfolio in: import of a lender's export, and the deterministic demo portfolio."""

from campaigns.portfolio.importer import ImportReport, PortfolioSource, RowError, import_portfolio

__all__ = ["ImportReport", "PortfolioSource", "RowError", "import_portfolio"]
