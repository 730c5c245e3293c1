"""ihomer.connectors."""
