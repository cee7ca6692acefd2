"""Shared machinery of the LLM judges: load a classifier model (safetensors only, no remote code unless the
user opts in, Hub downloads pinned to a revision) and run it greedily over formatted judge prompts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from mubench.core.errors import InvalidValue
from mubench.core.settings import MAX_BATCH
from mubench.judges.base import Judge, JudgeParams, Verdict


class LlmJudgeParams(JudgeParams):
    model: str = Field(description="a Hub repo id or a local directory")
    revision: str | None = Field(None, description="Hub commit to pin (required for a Hub repo)")
    trust_remote_code: bool = False
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    max_new_tokens: int = Field(8, ge=1)


class LlmJudge(Judge):
    """A judge that formats (prompt, response) into a classifier prompt and parses the model's answer."""

    deterministic = False

    default_model: ClassVar[str]
    # the classifier was trained on prompts that start with its BOS token; tokenised without special tokens (the
    # prompt is already formatted), so BOS is written into the text
    bos: ClassVar[bool] = False
    # the answer word with which the classifier flags an exchange as harmful (the CPU twin of a paper profile
    # builds a stand-in classifier that always gives it: mubench/tools/twin.py)
    flag_answer: ClassVar[str]
    pass_answer: ClassVar[str]  # ... and the one with which it passes it

    @classmethod
    def answer_words(cls) -> tuple[str, str]:
        """The two answers ``parse`` reads (the twin's tokenizer holds each as one token, as the real ones do)."""
        return cls.flag_answer, cls.pass_answer

    @classmethod
    def chat_template(cls) -> str | None:
        """The chat template the released classifier reads an exchange through (None: the prompt is ``format``'s
        text, tokenised as it is); the twin's stand-in classifier carries it."""
        return None

    def __init__(self, params: LlmJudgeParams | None = None) -> None:
        super().__init__(params)
        self._loaded = None

    @property
    def version(self) -> str:
        return f"{self.p.model}@{self.p.revision or 'local'}"

    def format(self, prompt: str, response: str) -> str:
        raise NotImplementedError

    def parse(self, answer: str) -> Verdict:
        raise NotImplementedError

    def text(self, tokenizer, prompt: str, response: str) -> str:
        """The classifier input for one (prompt, response): ``format``, with BOS in front where ``bos`` asks."""
        text = self.format(prompt, response)
        if self.bos and tokenizer.bos_token and not text.startswith(tokenizer.bos_token):
            text = tokenizer.bos_token + text
        return text

    def release(self) -> None:
        """Free the classifier (GPU memory) once judging is done: utility and drift do not need it."""
        if self._loaded is not None:
            self._loaded = None
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def load(self):
        """(model, tokenizer), loaded once."""
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from mubench.core.runtime import compute_dtype, pick_device

            source = Path(self.p.model)
            kwargs = {"trust_remote_code": self.p.trust_remote_code}
            if not source.is_dir():
                if not self.p.revision:
                    raise InvalidValue(f"judge.options.{self.name}.revision: pin a Hub commit for "
                                     f"'{self.p.model}' (or point model at a local directory)")
                kwargs["revision"] = self.p.revision
            device = pick_device(self.p.device)
            tokenizer = AutoTokenizer.from_pretrained(self.p.model, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(self.p.model, dtype=compute_dtype(device),
                                                         use_safetensors=True, **kwargs)
            model.to(device).eval()
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._loaded = (model, tokenizer)
        return self._loaded

    def judge(self, prompt: str, response: str) -> Verdict:
        return self.judge_many([prompt], [response])[0]

    def judge_many(self, prompts: list[str], responses: list[str]) -> list[Verdict]:
        from mubench.engine.generate import DecodeParams, generate_batch

        model, tokenizer = self.load()
        texts = [self.text(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        decode = DecodeParams(self.p.max_new_tokens)
        answers: list[str] = []
        for start in range(0, len(texts), self.p.batch_size):
            answers += generate_batch(model, tokenizer, texts[start:start + self.p.batch_size], decode)
        return [replace(self.parse(a), output=a) for a in answers]
