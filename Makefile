# make demo: set up and run the main job on built-in synthetic data (no download)
# make test: set up and run the test suite
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-done
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export PYTHONPATH := $(CURDIR)/lib

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): scripts/setup.sh setup.py
	bash scripts/setup.sh
	touch $@

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)   # in-process tests only: no mpirun, no driver processes
	$(PY) -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(PY) bench/bench_surface.py
	$(PY) bench/bench_hessian.py
	$(PY) bench/bench_scaling.py

clean:
	rm -rf demo_out bench/out .pytest_cache
