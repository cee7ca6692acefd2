"""GCG (Zou et al. 2023): greedy coordinate gradient search for an adversarial suffix, implemented here.

(``nanogcg`` 0.3.0 pins transformers <= 4.47.1 and indexes the prefix cache as a tuple, which breaks on
transformers 5's ``DynamicCache``, so it cannot sit in our lock.)

One universal suffix is optimised on the base model over the first ``behaviours`` attack seeds, then appended
unchanged to every seed prompt and transferred to every unlearned variant (the standard transfer protocol).
Each step:
1. gradient of the target loss (cross-entropy of ``target`` after the prompt) w.r.t. a one-hot encoding of the
   suffix tokens, summed over the behaviours, normalised per position;
2. ``search_width`` candidates, each replacing ``n_replace`` random positions by a token drawn from the top-k
   of the negative gradient (seeded; special and, by default, non-ASCII tokens are never proposed);
3. candidates that do not survive a decode -> encode round trip are dropped (the suffix must mean the same
   tokens when it is sent as text);
4. all candidates are scored in batches on top of a per-behaviour KV cache of the prompt prefix (the chat
   template and the goal up to the suffix), and the best one becomes the suffix;
5. early stop once greedy decoding under teacher forcing reproduces the target for every behaviour.
The target string is harmless ("Sure, here is"): an affirmative opening, nothing more.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from mubench.core.errors import FailedStep
from mubench.core.progress import log
from mubench.jailbreaks.base import JAILBREAKS, FitContext, FitWork, Jailbreak, JailbreakParams

if TYPE_CHECKING:
    import torch

# torch and transformers are imported inside the functions: the attack registry imports this module, and the
# template-attack stages should not pay seconds of imports for an attack they do not run
MARK = "\x00SUFFIX\x00"


class GcgParams(JailbreakParams):
    steps: int = Field(20, ge=1)
    search_width: int = Field(64, ge=1, description="candidates scored per step")
    topk: int = Field(64, ge=1, description="tokens per position proposed from the gradient")
    n_replace: int = Field(1, ge=1, description="positions changed per candidate")
    suffix_tokens: int = Field(10, ge=1)
    init_token: str = Field(" x", min_length=1, description="the suffix starts as this token repeated")
    target: str = Field("Sure, here is", min_length=1)
    behaviours: int = Field(2, ge=1, description="attack seeds the universal suffix is optimised on")
    eval_batch: int = Field(64, ge=1)
    allow_non_ascii: bool = False
    early_stop: bool = True


class _Behaviour:
    """Token pieces of one optimisation prompt: [before][suffix][after][target]."""

    def __init__(self, model, tokenizer, goal: str, target: str, system_prompt: str | None) -> None:
        import torch

        from mubench.engine.generate import chat_text
        from mubench.engine.kv import PrefixCache

        text = chat_text(tokenizer, goal + MARK, system_prompt)
        before, after = text.split(MARK)
        device = model.device

        def ids(s: str) -> torch.Tensor:
            return torch.tensor(tokenizer(s, add_special_tokens=False)["input_ids"], device=device)

        self.before, self.after, self.target = ids(before), ids(after), ids(target)
        self.prefix = PrefixCache(model, self.before)


@JAILBREAKS.register("gcg")
class Gcg(Jailbreak):
    name = "gcg"
    version = "1"
    needs_model = True
    Params = GcgParams

    def __init__(self, params: GcgParams | None = None) -> None:
        super().__init__(params)
        self.suffix: str | None = None

    def fit_work(self) -> FitWork:
        """Per step: ``search_width`` candidates' forwards (in batches of ``eval_batch``) and one gradient
        (forward + backward) per behaviour; a sequence is the goal (~64 tokens), the suffix and the target."""
        p = self.p
        return FitWork(batch=min(p.eval_batch, p.search_width), tokens=64 + p.suffix_tokens + 16,
                       sequences=(p.search_width + 3) * p.steps * p.behaviours,
                       batch_key="jailbreaks.params.gcg.eval_batch", what="a forward at GCG's candidate shapes")

    def params(self) -> dict:
        return {**self.p.model_dump(), "suffix": self.suffix}

    def apply(self, goal: str) -> str:
        if self.suffix is None:
            raise FailedStep("gcg: fit() on the base model before apply()")
        return goal + self.suffix

    # ------------------------------------------------------------------ optimisation
    def fit(self, ctx: FitContext) -> dict:
        import torch

        model, tok, p = ctx.model, ctx.tokenizer, self.p
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        seeds = sorted(ctx.behaviours, key=lambda r: r.id)[: p.behaviours]
        behaviours = [_Behaviour(model, tok, r.prompt, p.target, ctx.system_prompt) for r in seeds]
        embed = model.get_input_embeddings()
        allowed = allowed_tokens(tok, embed.weight.shape[0], p.allow_non_ascii).to(model.device)
        suffix = self._init_suffix(tok, model.device)
        gen = torch.Generator().manual_seed(ctx.seed)
        losses, best_loss, best = [], math.inf, suffix
        current_loss, _ = self._score(model, behaviours, suffix[None])
        losses.append(current_loss.item())
        success, steps_run = False, 0
        for step in range(p.steps):
            grad = self._token_gradient(model, embed, behaviours, suffix)
            candidates = sample_candidates(suffix, grad, allowed, p.search_width, p.topk, p.n_replace, gen)
            candidates = filter_round_trip(tok, candidates)
            steps_run = step + 1
            if len(candidates) == 0:
                losses.append(losses[-1])
                continue
            cand_losses, matched = self._score(model, behaviours, candidates)
            i = int(torch.argmin(cand_losses))
            suffix = candidates[i]
            losses.append(cand_losses[i].item())
            if losses[-1] < best_loss:
                best_loss, best = losses[-1], suffix
            log(f"[gcg] step {step + 1}/{p.steps}: loss {losses[-1]:.4f}")
            if p.early_stop and bool(matched[i]):
                success = True
                break
        if best_loss > losses[0]:
            best = self._init_suffix(tok, model.device)
        self.suffix = tok.decode(best.tolist())
        return {"losses": [round(v, 6) for v in losses], "steps_run": steps_run, "early_stopped": success,
                "best_loss": round(min(losses), 6), "suffix": self.suffix, "suffix_ids": best.tolist(),
                "behaviours": [r.id for r in seeds]}

    def _init_suffix(self, tok, device) -> torch.Tensor:
        import torch

        ids = tok(self.p.init_token * self.p.suffix_tokens, add_special_tokens=False)["input_ids"]
        if len(ids) != self.p.suffix_tokens:
            one = tok(self.p.init_token, add_special_tokens=False)["input_ids"]
            ids = (one * self.p.suffix_tokens)[: self.p.suffix_tokens]
        return torch.tensor(ids, device=device)

    def _token_gradient(self, model, embed, behaviours: list[_Behaviour], suffix: torch.Tensor) -> torch.Tensor:
        import torch

        weight = embed.weight
        one_hot = torch.zeros(len(suffix), weight.shape[0], device=weight.device, dtype=weight.dtype)
        one_hot[torch.arange(len(suffix)), suffix] = 1.0
        one_hot.requires_grad_(True)
        suffix_embeds = one_hot @ weight
        total = 0.0
        for b in behaviours:
            embeds = torch.cat([embed(b.before), suffix_embeds, embed(b.after), embed(b.target)])[None]
            # only the logits that predict the target (the LM head is a vocabulary-wide matmul per position)
            logits = model(inputs_embeds=embeds, logits_to_keep=len(b.target) + 1).logits[0]
            total = total + torch.nn.functional.cross_entropy(logits[:len(b.target)].float(), b.target)
        (total / len(behaviours)).backward()
        grad = one_hot.grad.detach()
        return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def _score(self, model, behaviours: list[_Behaviour], candidates: torch.Tensor):
        """Mean target loss per candidate over the behaviours, and whether greedy decoding hits the target."""
        import torch

        from mubench.engine.kv import CACHE_ARG

        with torch.no_grad():
            losses = torch.zeros(len(candidates), device=candidates.device)
            matched = torch.ones(len(candidates), dtype=torch.bool, device=candidates.device)
            for b in behaviours:
                for s in range(0, len(candidates), self.p.eval_batch):
                    chunk = candidates[s:s + self.p.eval_batch]
                    n = len(chunk)
                    ids = torch.cat([chunk, b.after.expand(n, -1), b.target.expand(n, -1)], dim=1)
                    logits = model(input_ids=ids, use_cache=True, logits_to_keep=len(b.target) + 1,
                                   **{CACHE_ARG: b.prefix.expand(n)}).logits
                    pred = logits[:, :len(b.target)].float()  # the positions that predict the target
                    target = b.target.expand(n, -1)
                    ce = torch.nn.functional.cross_entropy(pred.transpose(1, 2), target, reduction="none").mean(1)
                    losses[s:s + n] += ce / len(behaviours)
                    matched[s:s + n] &= (pred.argmax(-1) == target).all(-1)
            return losses, matched


def allowed_tokens(tokenizer, vocab_rows: int, allow_non_ascii: bool) -> torch.Tensor:
    """Boolean mask over embedding rows: the tokens GCG may put in a suffix."""
    import torch

    mask = torch.zeros(vocab_rows, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    for token_id in range(min(vocab_rows, len(tokenizer))):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if not text or (not allow_non_ascii and not (text.isascii() and text.isprintable())):
            continue
        mask[token_id] = True
    return mask


def sample_candidates(suffix: torch.Tensor, grad: torch.Tensor, allowed: torch.Tensor, width: int, topk: int,
                      n_replace: int, gen: torch.Generator) -> torch.Tensor:
    """``width`` copies of ``suffix``, each with ``n_replace`` positions set to top-k gradient tokens."""
    import torch

    scores = (-grad).masked_fill(~allowed[None], -math.inf)
    top = scores.topk(min(topk, int(allowed.sum())), dim=-1).indices.cpu()
    length = len(suffix)
    positions = torch.stack([torch.randperm(length, generator=gen)[:n_replace] for _ in range(width)])
    choice = torch.randint(0, top.shape[1], (width, positions.shape[1]), generator=gen)
    candidates = suffix.cpu().repeat(width, 1)
    candidates.scatter_(1, positions, torch.gather(top[positions], 2, choice[..., None]).squeeze(-1))
    return candidates.to(suffix.device)


def filter_round_trip(tokenizer, candidates: torch.Tensor) -> torch.Tensor:
    """Keep the distinct candidates whose decoded text re-encodes to the same tokens."""
    import torch

    keep, seen = [], set()
    for row in candidates.tolist():
        key = tuple(row)
        if key in seen:
            continue
        seen.add(key)
        if tokenizer(tokenizer.decode(row), add_special_tokens=False)["input_ids"] == row:
            keep.append(row)
    return torch.tensor(keep, dtype=candidates.dtype, device=candidates.device).reshape(-1, candidates.shape[1])
