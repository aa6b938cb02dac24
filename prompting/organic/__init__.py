"""Organic queries: an OpenAI-compatible endpoint on the validator (off by default).

``keys``: API keys and their per-key rate limits, from a file the operator edits with
``scripts/organic_keys.py``. ``queue``: the bounded admission of organic work, so it
never stalls the synthetic loop. ``service``: picks the best miners, streams their
verified answers, hands the user the first, and scores them all. ``api``: the HTTP
routes (``/v1/chat/completions``, ``/v1/models``).
"""
