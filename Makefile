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

# The main job: screen Li-Mn-Fe-O with the shipped default ensemble against the known
# compounds of mp_e_form (re-running resumes and re-ranks into the same folder).
run: $(STAMP)
	$(VENV)/bin/screening screen --elements Li,Mn,Fe,O --max-arity 4 --max-atoms 10 \
		--model data/models/default \
		--reference $(DATA)/mp_e_form/train.csv --reference $(DATA)/mp_e_form/val.csv \
		--out runs/screen-Li-Mn-Fe-O

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/featurize.py
