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

.PHONY: venv test reproduce claims bench efficiency-gpu notebooks clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# QUICK=1: small sizes (about a minute); progress also goes to $(OUT)/reproduce.log.
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

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
