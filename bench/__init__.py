"""Benchmarks: ``python -m bench <name>`` runs ``bench/<name>.py``; results go to bench/results/."""
