"""Training Motion HMR (paper §3.2, App. B) in pieces: the run directory's files (`run_dir`), the inputs
(`inputs`), one training step (`step`) and the loop with its checkpoints, summaries and validation (`loop`)."""
