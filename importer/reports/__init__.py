"""What a run leaves behind: results.csv and failed.csv, summary.json (``RunSummary``, with how
the input was read), report.html, the timeline and the Prometheus metrics."""
