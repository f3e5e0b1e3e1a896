"""Canary analysis: is the canary as good as the stable, judged from live metrics.

The pieces, each pure but the providers' I/O elsewhere:

- `exposition`: one runtime pod's `/metrics` text as a `Snapshot` of the series read.
- `windows`: what happened between two snapshots, and the statistics on it.
- `sequential`: anytime-valid tests (e-values, confidence sequences) on everything since
  the attempt started, for `analysis.mode: sequential`.
- `spec`: `spec.rollout.analysis` parsed into an `AnalysisSpec` of `MetricSpec`s.
- `templates`: the analysis template an MLModel names, merged with its own fields.
- `kinds`: the registry of metric kinds (error rate, latency, prediction divergence,
  request rate, custom): each parses its limits, says what it needs read and whether
  it needs the stable as a baseline, and judges a window. Adding a metric is one module
  there and one line in its `REGISTRY`.
- `judging`: verdicts for a window (`judge`) and what they mean for the rollout
  (`decide`: continue, pause or roll back), with the state kept between intervals.
- `loop`: one analysis step per reconcile, from the readings the metrics reader took.
"""
