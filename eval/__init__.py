"""Offline evaluation: metrics, runs, reports; benchmarks live in eval.benchmarks."""
