"""mlmodel-runtime convert."""
