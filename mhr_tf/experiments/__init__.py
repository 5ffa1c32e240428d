"""What the entry scripts run, above the library: each experiment (the demo, the paper's ablations, the picture of
one training example, ...) is one module with one `run(...)`; its script in `scripts/` only parses flags and calls
it."""
