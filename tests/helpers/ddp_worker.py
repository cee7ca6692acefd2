"""Train the tiny model with GA and save the final weights (run directly or under `accelerate launch`)."""

from __future__ import annotations

import sys

from accelerate import PartialState
from safetensors.torch import save_file

from mubench.core.config import TinyRandomModel
from mubench.core.runtime import seed_everything
from mubench.engine.models import byte_level_tokenizer, tiny_random_model
from mubench.methods import METHODS
from mubench.training.loop import unlearn
from tests.helpers.rows import pair

PAIRS = [pair(f"Question number {i}?", f"Answer number {i} is short.") for i in range(8)]


def main(out: str, grad_accum: int) -> None:
    seed_everything(0)
    tokenizer = byte_level_tokenizer()
    spec = TinyRandomModel(source="tiny_random", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64)
    model = tiny_random_model(spec, tokenizer, seed=0)
    params = METHODS.entry("npo").Params(lr=1e-3, steps=3, batch_size=2, grad_accum=grad_accum, retain_weight=1.0)
    method = METHODS.get("npo", params)
    unlearn(method, model, tokenizer, PAIRS, PAIRS[::-1], seed=0, device="cpu")
    if PartialState().is_main_process:
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
