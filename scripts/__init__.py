"""The project's scripts, run from the checkout's root: the shell ones with bash, the Python
ones as `python -m scripts.NAME` (so they import bench/ as a package)."""
