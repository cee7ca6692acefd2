"""``mubench doctor [PARAMS]``: a preflight for the person about to spend GPU-hours.

One table, one row per check, each ``ok``, ``warn`` (could not be checked here, or worth a look) or ``BLOCKER``
(the run would fail); the command exits 1 on any blocker. Nothing is downloaded: Hub access is asked of the Hub
API where it is reachable, tokenizers are read from the local Hub cache where they already are, and what could
not be checked says so.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mubench.core.config import HubModel, Params
from mubench.core.workspace import Workspace

HEADROOM = 0.10  # the disk estimate + this share must be free (the GPU's margin is PlanSettings.margin)
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Row:
    check: str
    status: str  # ok | warn | BLOCKER
    detail: str


def hub_repos(p: Params) -> list[tuple[str, str, str]]:
    """(kind, repo, revision) of every Hub model and LLM judge the run downloads."""
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    repos = [("model", s.repo, s.revision) for n in p.models if isinstance(s := p.model_zoo[n], HubModel)]
    for name in dict.fromkeys((p.judge.safety, p.judge.oversafety)):
        cls = JUDGES.entry(name)
        if issubclass(cls, LlmJudge):
            options = cls.Params(**p.judge.options.get(name, {}))
            if not Path(options.model).is_dir():
                repos.append(("judge", options.model, options.revision or ""))
    return repos


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_params(path: Path) -> tuple[Params | None, list[Row]]:
    from mubench.core.config import ConfigError
    from mubench.families import load_params
    from mubench.tools.plan import profile_problems

    try:
        p = load_params(path)
    except ConfigError as exc:
        return None, [Row("params", "BLOCKER", str(exc))]
    problems = profile_problems(p)
    return p, [Row("params", "BLOCKER", line) for line in problems] or [Row("params", "ok", f"{path} validates")]


def check_gpu(p: Params, ws: Workspace) -> list[Row]:
    import torch

    wants_gpu = p.device == "cuda"
    if not torch.cuda.is_available():
        if wants_gpu:
            return [Row("gpu", "BLOCKER", f"device: cuda, but torch sees no GPU (torch {torch.__version__}, built "
                                          f"for CUDA {torch.version.cuda or 'none'}); check the driver, "
                                          "`--gpus all` and the NVIDIA container toolkit")]
        return [Row("gpu", "ok", f"device: {p.device}; no GPU visible, the run uses the CPU")]
    rows = []
    free, total = torch.cuda.mem_get_info(0)
    name = torch.cuda.get_device_name(0)
    rows.append(Row("cuda", "ok", f"{torch.cuda.device_count()} x {name}, torch {torch.__version__} with CUDA "
                                  f"{torch.version.cuda}, driver {_driver() or 'unknown'}"))
    from mubench.plan.profile import plan_profile
    from mubench.plan.stage import PlanSettings

    settings = PlanSettings()
    plans = plan_profile(p, settings, ws=ws)
    worst = max(plans, key=lambda x: x.peak)
    # this process holds its CUDA context already: the free memory is what a stage gets
    need = worst.need(settings, context=False)
    status = "ok" if need <= free else "BLOCKER"
    rows.append(Row("gpu memory", status, f"largest stage {worst.stage}: plan {worst.peak / 1e9:.1f} GB + "
                                          f"{settings.margin:.0%} margin = {need / 1e9:.1f} GB; free {free / 1e9:.1f} "
                                          f"of {total / 1e9:.1f} GB" + ("" if status == "ok" else
                                                                        " (`mubench plan` names the knob to turn)")))
    return rows


def _driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    import subprocess

    done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=20)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def check_hub(p: Params) -> list[Row]:
    from huggingface_hub import HfApi, get_token

    repos = hub_repos(p)
    if not repos:
        return [Row("hub", "ok", "no Hub model or judge in this run")]
    token = get_token()
    cached = {repo for _, repo, rev in repos if _snapshot(repo, rev) is not None}
    missing = [repo for _, repo, _ in repos if repo not in cached]
    rows = []
    if token is None and missing:
        rows.append(Row("hub token", "BLOCKER", f"no HF_TOKEN (nor a login) and {len(missing)} repo(s) to download "
                                                f"({', '.join(missing)}): the gated ones answer 401; accept each "
                                                "licence on the Hub, then export HF_TOKEN (docs/container.md)"))
    else:
        rows.append(Row("hub token", "ok", "token present" if token else "not needed: every repo is cached"))
    if hub_offline():
        rows.append(Row("hub access", "warn" if missing else "ok",
                        f"offline (HF_HUB_OFFLINE): access not checked for {len(repos)} repo(s); "
                        + (f"not in the local cache: {', '.join(missing)}" if missing else "all in the local cache")))
        return rows
    api = HfApi()
    for kind, repo, revision in repos:
        if repo in cached:
            rows.append(Row(f"hub {kind}", "ok", f"{repo}@{revision[:12]} in the local cache"))
            continue
        try:
            api.model_info(repo, revision=revision, token=token)
            rows.append(Row(f"hub {kind}", "ok", f"{repo}@{revision[:12]} reachable with this token"))
        except Exception as exc:  # gated, missing revision, no network: each is one line
            reason = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            if _unreachable(exc):
                rest = [r for _, r, _ in repos if r not in cached]
                rows.append(Row("hub access", "warn", f"the Hub is unreachable from here ({reason}): access not "
                                                      f"checked for {', '.join(rest)}"))
                break
            rows.append(Row(f"hub {kind}", "BLOCKER", f"{repo}@{revision[:12]}: {reason}"))
    return rows


def _unreachable(exc: BaseException) -> bool:
    """A network failure (no route, no DNS, timeout), as opposed to an answer from the Hub (401, 404)."""
    text = f"{exc.__class__.__name__} {exc}".lower()
    return any(word in text for word in ("connect", "resolve", "name or service", "timed out", "timeout",
                                         "network is unreachable", "offline"))


def _snapshot(repo: str, revision: str) -> Path | None:
    """The local Hub cache's snapshot folder of ``repo`` at ``revision`` (it holds config.json), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "config.json", revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def check_tokenizers(p: Params) -> list[Row]:
    from transformers import AutoTokenizer, GenerationConfig

    rows = []
    for kind, repo, revision in hub_repos(p):
        folder = _snapshot(repo, revision)
        if folder is None:
            rows.append(Row(f"template {kind}", "warn", f"{repo}: not downloaded yet, chat template and end tokens "
                                                        "not checked (they are at the model stage)"))
            continue
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ends = [tokenizer.eos_token_id]
        if (folder / "generation_config.json").is_file():
            config_ids = GenerationConfig.from_pretrained(folder).eos_token_id
            ends += config_ids if isinstance(config_ids, list) else [config_ids]
        names = [tokenizer.convert_ids_to_tokens(i) for i in sorted({i for i in ends if i is not None})]
        if kind == "model" and not tokenizer.chat_template:
            rows.append(Row(f"template {kind}", "BLOCKER", f"{repo}: no chat template; use its chat/instruct release"))
            continue
        from mubench.engine.generate import system_role_supported

        system = "system role" if tokenizer.chat_template and system_role_supported(tokenizer) else \
            "no system role (folded into the first user turn)" if tokenizer.chat_template else "no chat template"
        rows.append(Row(f"template {kind}", "ok", f"{repo}: {system}; stops on {', '.join(names)}"))
    return rows


def disk_need(p: Params, ws: Workspace) -> dict[str, float]:
    """Bytes the run writes: base checkpoints, variants (each method applied to a meta-device copy of the
    architecture, as the unlearn stage would: a LoRA variant saves its adapter, full fine-tuning of a few tensors
    saves those, else the full weights), DVC's cache copy of both, and the Hub download."""
    totals = {"hub download": 0.0, "checkpoints": 0.0}
    variant_bytes = 2 if p.device == "cuda" else 4  # GPU variants are saved in bf16
    for name in p.models:
        spec = p.model_zoo[name]
        sizes = saved_parameters(p, name, ws)
        base = sizes["base"] * BYTES.get(sizes["dtype"], 4)
        if isinstance(spec, HubModel):
            totals["hub download"] += base
        totals["checkpoints"] += base
        for method in p.methods:
            totals["checkpoints"] += sizes[method] * variant_bytes * len(p.seeds)
    totals["dvc cache copy"] = totals["checkpoints"]
    return totals


def saved_parameters(p: Params, name: str, ws: Workspace) -> dict:
    """Parameters each method's variant of model ``name`` saves, counted on the architecture built on the meta
    device (no memory): {"base": n, "dtype": release dtype, METHOD: n saved}."""
    import copy

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mubench.methods import METHODS
    from mubench.plan.profile import model_config
    from mubench.stages.unlearn import PARTIAL_SHARE
    from mubench.training.loop import add_lora

    spec = p.model_zoo[name]
    snapshot = _snapshot(spec.repo, spec.revision) if isinstance(spec, HubModel) else None
    # the release itself where it is already downloaded, else its architecture (mubench/plan/arch)
    config = AutoConfig.from_pretrained(snapshot) if snapshot else model_config(name, spec, ws)
    dtype = str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(config)
    total = sum(t.numel() for t in base.parameters())
    out: dict = {"dtype": dtype, "base": total}
    adapters: dict[str, int] = {}  # LoRA settings -> adapter parameters (PEFT takes ~2 s per 8B model)
    for method in p.methods:
        hparams = p.method_config(method)
        model = copy.deepcopy(base)
        if hparams.lora is not None:
            key = hparams.lora.model_dump_json(exclude={"save"})
            if key not in adapters:
                adapters[key] = sum(t.numel() for t in add_lora(model, hparams.lora).parameters() if t.requires_grad)
            out[method] = adapters[key] if hparams.lora.save == "adapter" else total
            continue
        METHODS.get(method, hparams).prepare(model, 0)
        trained = sum(t.numel() for t in model.parameters() if t.requires_grad)
        out[method] = trained if trained < PARTIAL_SHARE * total else total
    return out


def check_disk(p: Params, ws: Workspace) -> list[Row]:
    import warnings

    with warnings.catch_warnings():  # transformers' deprecation notes from PEFT are not the user's business here
        warnings.simplefilter("ignore")
        need = disk_need(p, ws)
    total = sum(need.values())
    free = shutil.disk_usage(ws.root).free
    parts = ", ".join(f"{k} {v / 1e9:.1f} GB" for k, v in need.items())
    status = "ok" if total * (1 + HEADROOM) <= free else "BLOCKER"
    return [Row("disk", status, f"needs about {total / 1e9:.1f} GB ({parts}); {free / 1e9:.1f} GB free at {ws.root}")]


def check_compiler(p: Params) -> list[Row]:
    """``generation.decode: graphs`` on a GPU compiles the decoding step at run time: Inductor's Triton kernels and
    Triton's launcher, built with a C compiler (``CC`` or ``cc``/``gcc`` on PATH) against the Python headers. On
    a CPU the step is captured without generated code (``engine.generate.graph_compile_config``): nothing to
    build."""
    import torch

    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    on_gpu = p.device != "cpu" and torch.cuda.is_available()
    if not p.generation.graphs or not on_gpu:
        why = "generation.decode: eager" if not p.generation.graphs else "generation.decode: graphs on the CPU"
        return [Row("compiler", "ok", f"{why}, nothing is built at run time; C compiler: {compiler or 'none'}")]
    if not compiler:
        return [Row("compiler", "BLOCKER", "generation.decode: graphs compiles the decoding step on the GPU, but no "
                                           "C compiler is on PATH; install gcc and the Python headers (the image "
                                           "has them), or set generation.decode: eager")]
    rows = [Row("compiler", "ok", f"generation.decode: graphs; C compiler: {compiler}")]
    try:
        import triton
    except ImportError:
        rows.append(Row("triton", "BLOCKER", "generation.decode: graphs on a GPU needs triton (torch's CUDA wheels "
                                             "bring it); reinstall from requirements/cuda-runtime.lock"))
    else:
        rows.append(Row("triton", "ok", f"triton {triton.__version__} (compiles the decoding graphs)"))
    return rows


def doctor(path: Path, ws: Workspace) -> list[Row]:
    p, rows = check_params(path)
    if p is None:
        return rows
    for check in (lambda: check_gpu(p, ws), lambda: check_hub(p), lambda: check_tokenizers(p),
                  lambda: check_disk(p, ws), lambda: check_compiler(p)):
        try:
            rows += check()
        except Exception as exc:  # a check that breaks is reported, not a traceback
            rows.append(Row("doctor", "warn", f"a check failed to run: {exc.__class__.__name__}: {exc}"))
    return rows


def render(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    return "\n".join(f"{r.check:<{width}}  {r.status:<7}  {r.detail}" for r in rows)


def as_json(rows: list[Row]) -> str:
    return json.dumps([r.__dict__ for r in rows], indent=1)

