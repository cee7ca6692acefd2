# mubench image: base pinned by digest, hashed lock installed with --require-hashes, runs as any non-root uid,
# `dvc repro` by default. CPU check build (no GPU needed; see .ci/image-check and docs/container.md):
#   --build-arg BASE_IMAGE=<a Debian bookworm or Ubuntu 22.04 image> --build-arg LOCK=requirements/cpu-runtime.lock
# The torch wheels in cuda-runtime.lock bundle their CUDA 13 user-space libraries (nvidia-* packages), so the base only
# provides the OS layer and the NVIDIA container runtime hooks; the host driver must support CUDA 13
# (NVIDIA_REQUIRE_CUDA below makes the NVIDIA runtime refuse an older driver instead of silently using the CPU).
ARG BASE_IMAGE=nvidia/cuda:12.4.1-base-ubuntu22.04@sha256:8767a245ed2c481eb245d8f6c625accc3788e1fb8612403d6b4cd4645a4f09c7
FROM ${BASE_IMAGE}

# Python 3.11 is what the lock files are resolved for (Debian bookworm has it; Ubuntu jammy in universe).
# DEBIAN_FRONTEND is a build argument: it must not stay in the runtime environment.
ARG DEBIAN_FRONTEND=noninteractive
# g++ and the Python headers: `generation.decode: graphs` compiles the decoding step at run time on a GPU (Inductor's
# Triton kernels; Triton builds its launcher against Python.h); `mubench doctor` checks for them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev g++ git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/mubench \
    USER=mubench \
    HF_HOME=/cache/huggingface \
    MUBENCH_CACHE=/cache/mubench \
    DVC_NO_ANALYTICS=1 \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0" \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Any `--user UID:GID` works, not only 1000: HOME and the caches are writable by every uid (USER and HOME are set,
# so nothing needs a passwd entry), and git accepts a bind-mounted checkout owned by another uid.
RUN useradd --create-home --uid 1000 --shell /bin/bash mubench \
    && mkdir -p /cache/mubench /cache/huggingface /work /opt/venv \
    && chown -R 1000:1000 /cache /work /opt/venv \
    && chmod 1777 /cache /cache/mubench /cache/huggingface /home/mubench \
    && git config --system --add safe.directory '*'

# after the apt layer: changing the lock or the pip options does not re-run apt. The runtime lock is the full
# lock without the dev extra (pytest, ruff, hadolint), pins and hashes unchanged (requirements/subset_lock.py).
# The hashed setuptools goes in first, and the lock with --no-build-isolation: the four sdists in it are built
# by that setuptools, not by build dependencies pip would fetch without a hash check.
ARG LOCK=requirements/cuda-runtime.lock
ARG PIP_EXTRA=""
USER 1000:1000
COPY --chown=1000:1000 requirements/build.lock /tmp/build.lock
COPY --chown=1000:1000 ${LOCK} /tmp/requirements.lock
COPY --chown=1000:1000 requirements/pip_sources.py /tmp/pip_sources.py
# pip_sources.py adds PyTorch's CPU index for a +cpu lock unless PIP_EXTRA already supplies the wheel; its output
# is pip options, to be split into words
# hadolint ignore=SC2046
RUN python3.11 -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes --no-deps -r /tmp/build.lock ${PIP_EXTRA} \
    && pip install --no-cache-dir --require-hashes --no-deps --no-build-isolation --use-pep517 \
        -r /tmp/requirements.lock ${PIP_EXTRA} $(python /tmp/pip_sources.py pip-args /tmp/requirements.lock ${PIP_EXTRA})

WORKDIR /work
COPY --chown=1000:1000 . /work
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . && mubench --help > /dev/null

# OCI labels: where the image came from (`make image` passes them)
ARG SOURCE=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mubench" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

VOLUME ["/cache"]
CMD ["dvc", "repro"]
