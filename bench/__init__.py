"""Benchmarks: ours side by side with the alternative, as ratios, in one run."""
