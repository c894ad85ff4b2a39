"""Human labels: append-only annotations, derived consensus, review decisions, agreement metrics."""
