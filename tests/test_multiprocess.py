"""Two CPU processes (DDP over gloo) equal one process with twice the gradient accumulation.

Launched with torchrun: in accelerate 1.15 `accelerate launch --cpu --num_processes 2` starts a single process
(MULTI_CPU needs an MPI host file there), while the Accelerator itself picks up torchrun's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
WORKER = ROOT / "tests" / "helpers" / "ddp_worker.py"


def test_two_processes_match_one_with_double_accumulation(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single, multi = tmp_path / "single.safetensors", tmp_path / "multi.safetensors"
    subprocess.run([sys.executable, str(WORKER), str(single), "2"], check=True, env=env, capture_output=True)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29517", str(WORKER), str(multi), "1"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(single), load_file(multi)
    assert a.keys() == b.keys()
    base = load_file(single)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert any(not torch.equal(base[k], torch.zeros_like(base[k])) for k in base)
