# mubench image: CUDA base pinned by digest, hashed lock installed with --require-hashes, non-root user,
# `dvc repro` by default. For checks on a machine without a GPU, substitute a CPU base and the CPU lock:
#   --build-arg BASE_IMAGE=<ubuntu:22.04 pinned by digest> --build-arg LOCK=requirements/cpu.lock
# The torch wheels in cuda.lock bundle their CUDA 13 user-space libraries (nvidia-* packages), so the base only
# provides the OS layer and the NVIDIA container runtime hooks; the host driver must support CUDA 13.
ARG BASE_IMAGE=nvidia/cuda:12.4.1-base-ubuntu22.04@sha256:8767a245ed2c481eb245d8f6c625accc3788e1fb8612403d6b4cd4645a4f09c7
FROM ${BASE_IMAGE}

ARG LOCK=requirements/cuda.lock
ARG PIP_EXTRA=""
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/cache/huggingface \
    MUBENCH_CACHE=/cache/mubench \
    DVC_NO_ANALYTICS=1

# Python 3.11 is what the lock files are resolved for (jammy ships it in universe).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /bin/bash mubench \
    && mkdir -p /cache /work /opt/venv \
    && chown mubench:mubench /cache /work /opt/venv

USER 1000:1000
COPY --chown=1000:1000 ${LOCK} /tmp/requirements.lock
RUN python3.11 -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock ${PIP_EXTRA}

WORKDIR /work
COPY --chown=1000:1000 . /work
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . && mubench --help > /dev/null

VOLUME ["/cache"]
CMD ["dvc", "repro"]
