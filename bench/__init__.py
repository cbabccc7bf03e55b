"""The benchmarks, one module each, run from the checkout's root as `python -m bench.NAME`;
each writes its results into docs/BENCHMARKS.md with --write."""
