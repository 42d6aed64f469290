"""A variant written as a folder that runs without the lab (export.py) and its load-and-run snippet (snippets.py)."""
