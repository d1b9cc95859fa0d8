"""treefork: run many agents in parallel on one git repository."""
