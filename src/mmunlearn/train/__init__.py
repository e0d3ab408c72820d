"""Training: BPR with vectorised negative sampling and early stopping on validation."""
