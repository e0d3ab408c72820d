"""mmunlearn: machine unlearning for multimodal recommender systems.

The package is layered; imports only point down this list:
``cli`` → ``bench`` → ``unlearn`` → ``train`` / ``evaluate`` → ``checkpoint`` → ``models`` → ``data``.
"""

__version__ = "0.1.0"
