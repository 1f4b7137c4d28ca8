"""Benchmarks of xpnn against hand-written NumPy and PyTorch (``python -m benchmarks``).

Plain Python, no timing assertions: ``run`` prints a table and writes a JSON file; see
``benchmarks/README.md`` for how to read them and the latest figures.
"""
