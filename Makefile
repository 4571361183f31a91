# Set-up is part of every target: a fresh machine needs only `make run` or `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DATA ?= ../shared/data

.PHONY: install run test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# the CPU build on local disk; an unpinned torch would pull a multi-GB CUDA build
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The main job: the screen-candidates flow (embedded Prefect API, local Dask cluster) over the
# lithium/sodium transition-metal oxides up to quaternaries (11,641 candidates), scored by the
# shipped default ensemble against the 78,850 known compounds of mp_e_form (the 864 of these
# elements make the hull; all of them inform p_stable), ranked by p_stable. Re-running resumes;
# the folder is named after the model's weights and stability model, so a new default starts a
# new run (a run folder refuses to mix the outputs of two models).
MODEL_ID := $(shell python3 -c "import hashlib, pathlib; d = pathlib.Path('data/models/default'); print(hashlib.sha256(b''.join(p.read_bytes() for p in (d / 'model.safetensors', d / 'stability.pkl') if p.exists())).hexdigest()[:8])")
MAIN_OUT ?= runs/screen-Li-Na-Mn-Fe-Co-Ni-O-$(MODEL_ID)
run: $(STAMP)
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(VENV)/bin/python -m flows screen-candidates \
		-p elements='["Li","Na","Mn","Fe","Co","Ni","O"]' -p max_arity=4 -p max_atoms=10 -p chunk_size=2000 \
		-p model=data/models/default \
		-p reference='["$(DATA)/mp_e_form/train.csv","$(DATA)/mp_e_form/val.csv"]' \
		-p out=$(MAIN_OUT)

# lint and format checks (ruff, configured in pyproject.toml), then the suite
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/featurize.py
