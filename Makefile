# The study's entry points. Each creates the environment (.venv) first when it is missing.
#   make study            notebooks 01-05 on the embedded sample, real SAM 2.1 tiny weights
#   make smoke            the same pipeline with random weights (no download; a check, not results)
#   make test             unit tests, the smoke study, nbval on the notebooks
#   make benchmark        naive vs feature-reuse inference, figures printed
#   make study PARAMS=params/paper.yaml    the paper's full settings on TotalSegmentator v1.0
VENV ?= .venv
PY := $(VENV)/bin/python
PARAMS ?= params/sample.yaml

.PHONY: study smoke test benchmark env clean-smoke

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)

study: env
	$(PY) -m helpers.run $(PARAMS)

smoke: env
	$(PY) -m helpers.run params/smoke.yaml

test: env
	bash scripts/test.sh $(VENV)

benchmark: env
	$(PY) scripts/benchmark.py

clean-smoke:
	rm -rf outputs/smoke reports/smoke
