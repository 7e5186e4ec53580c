# Two commands do everything: `make train` and `make test`.
# Both create .venv inside the repo when it is missing and install the kit into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
KERNEL := collab-kit
# Extra arguments for the trainer, e.g. make train TRAIN_ARGS="--steps 4000 --method dml --run-dir runs/dml"
# (other settings need another run folder: runs/make-train resumes only with its own)
TRAIN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup train test test-full test-fast test-browser lab bench evidence clean-venv

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

# The kit's main job: both students learn together (method collab) on the
# embedded synthetic street scenes, CPU recipe (about 5-10 minutes on 2 cores).
# --resume: a second `make train` continues an interrupted run (a finished one
# is left as it is). Notebooks 2-4 load runs/make-train when it exists and scrub
# through its snapshots: the weights after steps 25, 50, 100 and 200 of the 400
# (step_<n>.pt; step 0 is rebuilt from the seed, 400 is last.pt). One snapshot is
# 69,338,749 bytes (ls -l; both students and the loss's projectors), 4 = 277 MB.
train: $(STAMP)
	$(PY) -m collab_lib.train --run-dir runs/make-train --resume --snapshot-steps 25 50 100 200 $(TRAIN_ARGS)

# The whole suite: library and ledger tests, the course notebooks through nbval in their smoke
# mode (COURSE_SMOKE=1: tiny runs, as CI), the papermill and command-line tests, and the browser
# tests when Chromium is there. Two pytest sessions side by side, one per core (tests/side_by_side.py):
# the library and research tests, shown as they run, and the notebooks (nbval, papermill and the browser
# suite; nbval and the browser share runs/course, so they stay in one session), whose report
# (runs/test-notebooks.log) follows. About 6 minutes on 2 CPU cores (benchmarks/RESULTS.md); each
# session lists its 10 slowest tests, for whoever keeps the suite fast.
test: $(STAMP)
	COURSE_SMOKE=$${COURSE_SMOKE:-1} $(PY) tests/side_by_side.py runs/test-notebooks.log \
	    tests research --ignore=tests/browser --ignore=tests/test_notebooks_papermill.py \
	    -p no:cacheprovider --durations=10 $(PYTEST_ARGS) \
	    --beside tests/browser tests/test_notebooks_papermill.py notebooks --nbval-lax --nbval-current-env \
	    -p no:cacheprovider --durations=10 $(PYTEST_ARGS)

# The course notebooks at full size, as a learner runs them (they train the make-train recipe
# unless runs/make-train holds it): about 15-20 minutes on 2 CPU cores.
test-full: $(STAMP)
	COURSE_SMOKE=0 $(PY) -m pytest notebooks --nbval-lax --nbval-current-env -p no:cacheprovider $(PYTEST_ARGS)

# The inner loop: the library and research tests without the slow and browser ones, in two sessions
# side by side (the trainer's and the evaluator's tests beside the rest): about a minute on 2 cores.
test-fast: $(STAMP)
	$(PY) tests/side_by_side.py runs/test-fast-trainer.log \
	    tests research --ignore=tests/browser --ignore=tests/test_train.py --ignore=tests/test_evaluate_predict.py \
	    -m "not slow and not browser" -p no:cacheprovider $(PYTEST_ARGS) \
	    --beside tests/test_train.py tests/test_evaluate_predict.py -m "not slow and not browser" -p no:cacheprovider $(PYTEST_ARGS)

test-browser: $(STAMP)
	$(PY) -m pytest tests/browser -m browser -p no:cacheprovider $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_data.py

clean-venv:
	rm -rf $(VENV)
