"""The engine of a comparison: it plans and runs one (evaluate.py), measures one variant in a worker process
(runner.py), and builds or loads a variant through the model store (variants.py)."""
