"""Workflows around the unlearning methods: what runs a method on a request, and what records it.

- ``request.py``: the one way a method is run on a request (fixed settings, retrain-free selection or
  defaults) — used by the CLI, the comparison table and the benchmark grid alike;
- ``selection.py``: the retrain-free selection rule over each method's declared search space;
- ``runner.py``: ``mmunlearn unlearn``: checkpoint + request → child checkpoint + ledger entry;
- ``ledger.py``: the record of processed requests;
- ``compare.py``: one request, several methods, judged against Retrain and its second seed.

``unlearn/`` holds only the methods; nothing there imports from here.
"""
