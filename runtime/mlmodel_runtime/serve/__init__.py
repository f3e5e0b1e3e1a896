"""mlmodel-runtime serve."""
