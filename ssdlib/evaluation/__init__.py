"""Evaluation suites and their result rows: the baselines suite (``baselines``), every method on
one benchmark (``comparison``), result rows (``rows``) and the results tables (``results``)."""
