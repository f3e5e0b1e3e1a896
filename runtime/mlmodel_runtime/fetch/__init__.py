"""mlmodel-runtime fetch."""
