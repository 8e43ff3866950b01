"""Training losses for the task heads."""
