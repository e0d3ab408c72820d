"""Evaluation: full-ranking utility, forgetting metrics, membership-inference and similarity audits."""
