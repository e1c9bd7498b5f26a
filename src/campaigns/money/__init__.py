"""Money: instalment plans."""
