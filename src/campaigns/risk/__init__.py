"""Risk scores: who is likely to pay without more help (see model.py)."""
