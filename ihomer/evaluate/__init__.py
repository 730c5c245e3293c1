"""ihomer.evaluate."""
