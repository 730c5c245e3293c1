"""ihomer.drift."""
