# Two entry points for a newcomer: `make reproduce` and `make test`. Both build
# .venv from nothing but Python. On a CPU-only machine the set-up installs the
# CPU wheel torch==2.13.0 before the project, so the project's torch range never
# pulls a CUDA build. A CUDA user installs their torch into .venv first (README).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
OUT    ?= results

.PHONY: venv test reproduce claims bench efficiency-gpu train-gpu clean mutation mutation-sample

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# QUICK=1: smoke-test sizes (43 s on two idle cores; every verdict "insufficient evidence"); progress also goes to $(OUT)/reproduce.log.
reproduce: $(STAMP)
	$(BIN)/bhyt-theory reproduce --out $(OUT) $(if $(QUICK),--quick)

claims: $(STAMP)
	$(BIN)/bhyt-theory claims --results $(OUT)

bench: $(STAMP)
	$(BIN)/bhyt-theory bench

# C6 on a GPU: Llama-1B-like block shape in bfloat16, 20 interleaved rounds (a few
# minutes). The table names the GPU that produced it.
efficiency-gpu: $(STAMP)
	$(BIN)/bhyt-theory efficiency --device cuda --dtype bfloat16 --width 2048 --heads 32 --kv-heads 8 \
		--seq-len 1024 --batch 8 --rounds 20 --csv $(OUT)/efficiency_gpu.csv

# The trained regime on a GPU: rmsnorm-llama and bhyt-ref (docs/recipes.md) at the Llama-374M shape
# (byte vocabulary), bf16 autocast on CUDA, 1200 steps of 16 × 1024 tokens (19.7 M tokens) each, one
# rate (1e-3) and one seed: sized for about 5 minutes per scheme on one H100. Same tables as the CPU
# ladder (ladder.csv, ladder_summary.csv, …) in $(OUT)/train_gpu.
train-gpu: $(STAMP)
	$(BIN)/bhyt-theory train --ladder --gpu --no-progress --workers 1 --out $(OUT)/train_gpu

# Mutation score of norms, estimators, model, bounds and meanfield ([tool.mutmut] in
# pyproject.toml), one module at a time on one core; not part of `make test` (hours on
# two shared cores). `mutmut results` lists the survivors afterwards.
MUTATION_MODULES ?= numerics.norms numerics.estimators numerics.model theory.bounds theory.meanfield
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,mutation]"
	for module in $(MUTATION_MODULES); do \
		OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 1 "bhyt_theory.$$module.*" || exit 1; \
	done
	$(BIN)/mutmut results

# The fixed sample of mutants of numerics/ and theory/ (every file, [tool.mutmut] in
# pyproject.toml): names whose SHA-256 of (name + the commit hash in tests/mutation_sample.py)
# is 0 mod 10, listed, run on one core and tabulated by tests/mutation_sample.py.
mutation-sample: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,mutation]"
	$(BIN)/python tests/mutation_sample.py list
	OMP_NUM_THREADS=1 $(BIN)/python tests/mutation_sample.py run
	$(BIN)/python tests/mutation_sample.py table

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info mutants
