"""Shared math of the unlearning methods: response-token log-probs, NLL and the NPO term.

Labels use -100 for prompt and padding positions, so those tokens never contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position log p(label) for next-token prediction, and the mask of counted positions.

    logits: (B, T, V) for inputs of length T; labels: (B, T) aligned with the inputs. Position t predicts t+1.
    """
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE
    # log-softmax only where a label counts: prompt and padding positions are skipped entirely
    picked = logits[:, :-1, :][mask].float()
    logp_picked = torch.log_softmax(picked, dim=-1).gather(-1, shifted_labels[mask].unsqueeze(-1)).squeeze(-1)
    logp = torch.zeros(mask.shape, dtype=logp_picked.dtype, device=logits.device)
    logp = logp.masked_scatter(mask, logp_picked)
    return logp, mask


def response_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits from the last prompt position on, and the labels aligned with them.

    The LM head (a vocabulary-wide matmul per position) only runs where some row's next token is scored:
    positions before the earliest response token of the batch are skipped (``logits_to_keep``).
    """
    labels = batch["labels"]
    scored = (labels[:, 1:] != IGNORE).any(dim=0).nonzero()
    start = int(scored[0]) if len(scored) else labels.shape[1] - 1
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=labels.shape[1] - start).logits
    return logits, labels[:, start:]


def sequence_logprob(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of response-token log-probs per sequence, number of response tokens per sequence)."""
    logp, mask = token_logprobs(*response_logits(model, batch))
    return logp.sum(dim=-1), mask.sum(dim=-1)


def nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean negative log-likelihood per response token over the whole batch."""
    total, count = sequence_logprob(model, batch)
    return -total.sum() / count.sum().clamp(min=1)


def npo_loss(logp_theta: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024): -(2/beta) * mean log sigmoid(-beta * (log pi_theta - log pi_ref))."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp_theta - logp_ref)).mean()


def mean_logprob(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Length-normalised log-prob per sequence: sum of response-token log-probs / number of those tokens."""
    total, count = sequence_logprob(model, batch)
    return total / count.clamp(min=1)


def kl_ref_theta(model, ref, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Token-level KL(pi_ref || pi_theta) averaged over response tokens (ref is frozen, no gradient)."""
    logits, labels = response_logits(model, batch)
    with torch.no_grad():
        ref_logits, _ = response_logits(ref, batch)
    mask = labels[:, 1:] != IGNORE
    logp_theta = torch.log_softmax(logits[:, :-1, :][mask].float(), dim=-1)
    logp_ref = torch.log_softmax(ref_logits[:, :-1, :][mask].float(), dim=-1)
    return (logp_ref.exp() * (logp_ref - logp_theta)).sum(dim=-1).mean()


def preference_loss(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/beta) * mean log sigmoid(beta * margin): the DPO form with NPO's 2/beta scale (DESIGN section 6)."""
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()
