# mubench — `make setup` once, then `make repro`; `make test` is what CI runs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# Empty: requirements/cuda.lock where `nvidia-smi` lists a GPU, else requirements/cpu.lock; LOCK=... overrides.
LOCK   ?=
# More pip options where a site needs them (a proxy index); torch's CPU index is added without it
# (requirements/pip_sources.py).
PIP_EXTRA ?=

.PHONY: setup repro test test-fast lint docs lock clean push pull verify image plots-template

# Python 3.11 checked first (one line when it is missing); the lock picked for the machine and the index that
# serves its torch wheel found by requirements/pip_sources.py. Two steps: the hashed setuptools first, then the
# lock with --no-build-isolation, so the four sdists in it are built by that setuptools instead of build
# dependencies pip would fetch without a hash check.
setup:
	@command -v $(PYTHON) > /dev/null 2>&1 || { echo "error: $(PYTHON) not found: make setup needs Python 3.11 \
	with its venv module (Debian/Ubuntu: apt install python3.11 python3.11-venv), or PYTHON=/path/to/python3.11, \
	or the image (docs/container.md)"; exit 1; }
	@$(PYTHON) requirements/pip_sources.py check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --require-hashes --no-deps -r requirements/build.lock $(PIP_EXTRA)
	@lock="$(LOCK)"; [ -n "$$lock" ] || lock="$$($(BIN)/python requirements/pip_sources.py lock)"; \
	extra="$$($(BIN)/python requirements/pip_sources.py pip-args "$$lock" $(PIP_EXTRA))" || exit 1; \
	echo "setup: installing $$lock $$extra"; \
	$(BIN)/pip install --require-hashes --no-deps --no-build-isolation --use-pep517 -r "$$lock" $$extra $(PIP_EXTRA)
	$(BIN)/pip install --require-hashes --no-deps -r requirements/docs.lock
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	$(BIN)/mubench --help > /dev/null && echo "setup ok: $(VENV)"

# the preflight first (`mubench doctor`: GPU memory, Hub token and access, disk, ...); it stops on a blocker
repro:
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mubench doctor
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# the artifacts (data, checkpoints, per-sample outputs) to and from the DVC remote (docs/reproducing.md)
push:
	$(BIN)/dvc push

pull:
	$(BIN)/dvc pull

verify:
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mubench verify

# the image, with OCI labels (docker where its daemon answers, else buildah); IMAGE_ARGS e.g. the CPU base and lock
IMAGE ?= mubench:$(shell git rev-parse --short HEAD)
IMAGE_ARGS ?=
image:
	$(shell docker info > /dev/null 2>&1 && echo docker build || echo buildah bud) -t $(IMAGE) $(IMAGE_ARGS) \
		--build-arg SOURCE="$$(git remote get-url origin 2>/dev/null || echo local)" \
		--build-arg REVISION="$$(git rev-parse HEAD)" \
		--build-arg CREATED="$$(git log -1 --format=%cI)" .

test:
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

test-fast:
	$(BIN)/python -m pytest -m "not slow"

lint:
	$(BIN)/ruff check mubench tests benchmarks requirements
	$(BIN)/hadolint Dockerfile

# the documentation site (docs/, mkdocs.yml) into build/site; --strict: a broken link or nav entry fails
docs:
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q

# Re-resolve the hashed lock files (needs the registries; docs/running.md), then cut the image's runtime
# locks (no dev extra) and the build lock out of them, pins and hashes unchanged.
lock:
	$(BIN)/pip-compile -q pyproject.toml requirements/cpu.in --extra dev --generate-hashes --allow-unsafe \
		--strip-extras --no-emit-index-url --no-emit-find-links -o requirements/cpu.lock
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(BIN)/pip-compile -q pyproject.toml requirements/cuda.in \
		--extra dev --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url -o requirements/cuda.lock
	for f in cpu cuda; do \
		$(BIN)/python requirements/subset_lock.py runtime requirements/$$f.lock requirements/$$f.in \
			> requirements/$$f-runtime.lock.tmp && mv requirements/$$f-runtime.lock.tmp requirements/$$f-runtime.lock; \
	done
	$(BIN)/python requirements/subset_lock.py build requirements/cpu.lock > requirements/build.lock.tmp \
		&& mv requirements/build.lock.tmp requirements/build.lock
	cd requirements && ../$(BIN)/pip-compile -q docs.in -c cpu.lock --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links -o docs.lock

# `dvc plots show` offline: Vega inlined into DVC's page (.dvc/plots/offline.html; needs npm)
plots-template:
	$(BIN)/python .dvc/plots/make_template.py

clean:
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
