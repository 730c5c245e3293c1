"""ihomer.learners."""
