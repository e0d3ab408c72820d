"""mmunlearn: machine unlearning for multimodal recommender systems.

The package is layered; imports only point down this list:
``cli`` → ``bench`` → ``unlearn`` → ``train`` / ``evaluate`` → ``checkpoint`` → ``models`` → ``data``.
"""

import os

# Transparent huge pages for torch's CPU allocator: fresh multi-MB tensors (MGCN's feature-table
# gradients) otherwise pay ~6 ms of page faults each on small VMs. Read by torch at import, so it is
# set here, before anything imports torch; an explicit user setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
