"""Time-series forecasting: sliding windows of a series -> the next H values (being built)."""
