"""File intake: files of rows (CSV, Parquet) read as streams, parsed field by field, every bad row reported
with its file, row and field while the good rows load. Used by the portfolio import and the payments import."""
