"""Metrics providers for canary analysis: each reads the stable's and the canary's
metrics into an `analysis_loop.Reading`, and never raises for a provider failure (a
failed read is an `error` in the reading, which makes the interval Inconclusive)."""
