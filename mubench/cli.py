"""mubench command line: one subcommand per pipeline stage (thin wrappers over the stage modules)."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from mubench.core.config import ConfigError, Params, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Judge machine unlearning as a safety tool: safety, over-safety and utility at once.")

RAW, BUILT, CORPUS = Path("data/raw"), Path("data/built"), Path("data/corpus")
ATTACKS_DIR, FITTED_DIR = Path("data/attacks"), Path("data/attacks_fitted")
MODEL_ATTACK_FITS = Path("data/model_attacks")
JUDGE_LABELS = Path("data/judge_labels")
AUDIT_LABELS = Path("data/judge_audit/labels.csv")
MODELS, RESULTS, REPORTS = Path("models"), Path("results"), Path("reports")
PROFILES = Path("profiles")

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to validate and use")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def stage(func):
    """Turn known failures into one readable line and a non-zero exit (2 for config and name problems).
    ``MUBENCH_DEBUG=1`` prints the traceback above that line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from mubench.core.registry import UnknownNameError

        try:
            return func(*args, **kwargs)
        except (ConfigError, UnknownNameError, OSError, RuntimeError, ValueError, KeyError) as exc:
            if os.environ.get("MUBENCH_DEBUG") == "1":
                traceback.print_exc()
            if isinstance(exc, ConfigError | UnknownNameError):
                _fail(str(exc), 2)
            _fail(_os_error(exc) if isinstance(exc, OSError) else str(exc), 1)

    return wrapper


def _os_error(exc: OSError) -> str:
    """``path: no such file or directory`` rather than ``[Errno 2] ...: 'path'``."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    hint = "; run the stage that makes it first (`dvc repro`)" if isinstance(exc, FileNotFoundError) else ""
    return f"{exc.filename}: {exc.strerror.lower()}{hint}"


def _member(name: str | int, allowed: list, key: str) -> str | int:
    """``name`` if this run's params list it under ``key``; else a ConfigError (exit 2) listing them."""
    if name not in allowed:
        raise ConfigError(f"'{name}' is not in {key} of this run; allowed: "
                          f"{', '.join(map(str, allowed)) or '(none)'}")
    return name


def _params(path: Path) -> Params:
    return load_params(path)


def _cache():
    if os.environ.get("MUBENCH_GEN_CACHE", "1") == "0":
        return None
    from mubench.core.pins import cache_dir
    from mubench.engine.generate import GenerationCache

    return GenerationCache(cache_dir() / "generations.sqlite")


@app.command()
@stage
def check(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml"),
          gpu_mem: Annotated[float | None, typer.Option(
              "--gpu-mem", help="also plan every GPU stage against this many GB (default: the visible GPU's "
                                "memory, when there is one)")] = None) -> None:
    """Validate a params file; prints what it would run, or one line saying what is wrong (exit 2). With a GPU
    (or --gpu-mem), every accelerator stage is planned (`mubench plan`) and one that cannot fit is refused."""
    p = _params(params)
    typer.echo(f"{params}: ok — models {p.models}, methods {p.methods}, attacks {p.attacks.names()}, "
               f"datasets {p.datasets}")
    if gpu_mem is not None or _visible_gpu_memory() is not None:
        from mubench.plan.profile import plan_profile

        limit = int(gpu_mem * 1e9) if gpu_mem is not None else _visible_gpu_memory()
        plans = plan_profile(p, models_dir=MODELS, limit=limit)
        typer.echo(f"{params}: every GPU stage fits {limit / 1e9:.1f} GB (peak {max(x.peak for x in plans) / 1e9:.1f} "
                   "GB; `mubench plan` for the table)")


def _visible_gpu_memory() -> int | None:
    from mubench.plan.trace import device_memory

    return device_memory()


@app.command()
@stage
def plan(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml"),
         gpu_mem: Annotated[float | None, typer.Option("--gpu-mem", help="GB per GPU to check against")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False) -> None:
    """Peak accelerator memory and compute of every GPU stage of a profile: each stage's own code run for one
    step on the model's architecture under fake tensors (no weights, no GPU needed). Exit 2 if a stage does
    not fit --gpu-mem."""
    import json

    from mubench.plan.profile import hours_by_kind, plan_profile, table_rows
    from mubench.plan.trace import PlanSettings

    p = _params(params)
    settings = PlanSettings()
    limit = int(gpu_mem * 1e9) if gpu_mem is not None else None
    plans = plan_profile(p, settings, models_dir=MODELS,
                         progress=None if as_json else (lambda s: typer.echo(f"[plan] {s}", err=True)))
    rows = table_rows(plans, limit, settings)
    hours = hours_by_kind(plans, settings)
    if as_json:
        typer.echo(json.dumps({"params": str(params), "gpu_mem_gb": gpu_mem, "settings": settings.__dict__,
                               "stages": rows, "gpu_hours": hours}, indent=1))
    else:
        _plan_table(params, rows, hours, settings, gpu_mem)
    misfits = [row for row in rows if row["fits"] is False]
    if misfits:
        from mubench.plan.trace import PlanError

        row = misfits[0]
        raise PlanError(f"{row['stage']}: needs {row['peak_gb']:.1f} GB, {gpu_mem:.1f} GB available "
                        f"({len(misfits)} stage(s) do not fit); fix: {row['fix']}")


def _plan_table(params: Path, rows: list[dict], hours: dict, settings, gpu_mem: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mubench plan {params}" + (f" (--gpu-mem {gpu_mem:g})" if gpu_mem else ""),
                  caption=f"GB = 1e9 bytes. Peak: traced (MemTracker on fake tensors). Assumed: prompts "
                          f"{settings.prompt_tokens} tokens, utility contexts {settings.utility_context_tokens}, "
                          f"<= {settings.rows_per_dataset} rows per dataset; GPU-hours at {settings.gpu_tflops:g} "
                          f"TFLOP/s x MFU {settings.mfu:g}.")
    for column in ("stage", "peak GB", "weights GB", "grads GB", "optimizer GB", "transient GB", "fits", "GPU-h",
                   "how"):
        table.add_column(column, justify="left" if column in ("stage", "how") else "right")
    for row in rows:
        fits = "" if row["fits"] is None else ("yes" if row["fits"] else "[red]NO[/red]")
        table.add_row(row["stage"], f"{row['peak_gb']:.1f}", f"{row['parameters_gb']:.1f}",
                      f"{row['gradients_gb']:.2f}", f"{row['optimizer_gb']:.2f}", f"{row['transient_gb']:.1f}", fits,
                      f"{row['gpu_hours']:.2f}", row["how"])
    console = Console(width=200)
    console.print(table)
    total = sum(hours.values())
    console.print("GPU-hours of a full run: " + ", ".join(f"{k} {v:.1f}" for k, v in hours.items())
                  + f"; total {total:.1f}", markup=False)


@app.command()
@stage
def fetch(name: Annotated[str, typer.Argument(help="dataset name (see params.yaml datasets)")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch one dataset from its pinned sources into data/raw/NAME (verified by sha256)."""
    p = _params(params)
    from mubench.core.progress import log
    from mubench.datasets import DATASETS
    from mubench.datasets.fetch import fetch as do_fetch

    DATASETS.get(name)
    prov = do_fetch(name, RAW, log=lambda m: typer.echo(m, err=True), kinds=p.data.sources)
    log(f"[fetch] {name}: {prov['rows']} rows from {prov['source']['describe']}")


@app.command()
@stage
def build(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build evaluation, forget and retain splits (seeded, stratified, leak-checked) into data/built."""
    from mubench.core.progress import log
    from mubench.stages.build import build as do_build

    summary = do_build(_params(params), RAW, BUILT)
    log(f"[build] {summary['counts']}")


@app.command()
@stage
def model(name: Annotated[str, typer.Argument(help="model name from params.yaml models")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Save the base checkpoint (fp32 safetensors) and generate its forget/retain corpus."""
    p = _params(params)
    _member(name, p.models, "models")
    from mubench.stages.model import build_model

    build_model(p, name, BUILT, MODELS / name / "base", CORPUS / name, _cache())


@app.command()
@stage
def attack(name: Annotated[str, typer.Argument(help="a template attack from params.yaml attacks.template")],
           params: ParamsOpt = Path("params.yaml")) -> None:
    """Apply one template attack to the attack seed prompts (data/attacks/NAME/)."""
    p = _params(params)
    from mubench.core.progress import log
    from mubench.jailbreaks import ATTACKS
    from mubench.stages.jailbreak import run_attack

    ATTACKS.get(name)
    _member(name, p.attacks.template, "attacks.template")
    n = run_attack(p, name, BUILT / "harmful.jsonl", ATTACKS_DIR / name)
    log(f"[attack] {name}: {n} prompts")


@app.command("attack-model")
@stage
def attack_model(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
                 name: Annotated[str, typer.Argument(help="a model-based attack (attacks.model_based)")],
                 params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit a model-based attack (ica, gcg) on MODEL's base checkpoint; write data/attacks_fitted/MODEL/NAME/."""
    p = _params(params)
    from mubench.core.progress import log
    from mubench.jailbreaks import ATTACKS
    from mubench.stages.jailbreak import run_model_attack

    ATTACKS.get(name)
    _member(model_name, p.models, "models")
    _member(name, p.attacks.model_based, "attacks.model_based")
    fit = run_model_attack(p, model_name, name, BUILT / "harmful.jsonl", MODELS / model_name / "base",
                           CORPUS / model_name, FITTED_DIR / model_name / name)
    log(f"[attack-model] {model_name}/{name}: " + ", ".join(
        f"{k} {v}" for k, v in fit.items() if k in ("steps_run", "best_loss", "suffix", "demonstrations")))


@app.command()
@stage
def unlearn(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
            method: Annotated[str, typer.Argument(metavar="METHOD")],
            seed: Annotated[int | None, typer.Option("--seed", help="one of params.yaml seeds (default: the "
                                                                    "first)")] = None,
            params: ParamsOpt = Path("params.yaml")) -> None:
    """Unlearn with METHOD and SEED from MODEL's base checkpoint into models/MODEL/METHOD-seedSEED."""
    p = _params(params)
    from mubench.core.config import variant_name
    from mubench.methods import METHODS
    from mubench.stages.unlearn import run_unlearn

    METHODS.get(method)
    _member(model_name, p.models, "models")
    _member(method, p.methods, "methods")
    seed = p.seeds[0] if seed is None else seed
    _member(seed, p.seeds, "seeds")
    variant = variant_name(method, seed)
    run_unlearn(p, model_name, method, seed, MODELS / model_name / "base", CORPUS / model_name,
                MODELS / model_name / variant, RESULTS / model_name / variant)


@app.command()
@stage
def evaluate(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
             variant: Annotated[str, typer.Argument(metavar="VARIANT", help="base or METHOD-seedS")],
             params: ParamsOpt = Path("params.yaml")) -> None:
    """Generate, judge and score one variant; writes results/MODEL/VARIANT/metrics.json + samples."""
    p = _params(params)
    _member(model_name, p.models, "models")
    _member(variant, p.variants(), "the variants (base + METHOD-seedS per method and seed)")
    from mubench.stages.evaluate import run_evaluate

    run_evaluate(p, model_name, variant, MODELS / model_name / variant, MODELS / model_name / "base",
                 CORPUS / model_name, BUILT, ATTACKS_DIR, FITTED_DIR, RESULTS / model_name / variant, _cache())


@app.command("model-attack")
@stage
def model_attack(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
                 variant: Annotated[str, typer.Argument(metavar="VARIANT", help="base or METHOD-seedS")],
                 params: ParamsOpt = Path("params.yaml")) -> None:
    """Relearn / ablate one variant with every model attack (model_attacks.names) and judge each attacked copy;
    writes results/MODEL/VARIANT/model_attacks/ (base: first fits the attacks into data/model_attacks/MODEL)."""
    p = _params(params)
    _member(model_name, p.models, "models")
    _member(variant, p.variants(), "the variants (base + METHOD-seedS per method and seed)")
    from mubench.stages.tamper import run_model_attacks

    run_model_attacks(p, model_name, variant, MODELS / model_name / variant, CORPUS / model_name, BUILT,
                      RESULTS / model_name / variant / "samples", MODEL_ATTACK_FITS / model_name,
                      RESULTS / model_name / variant / "model_attacks", _cache())


@app.command()
@stage
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Tables (summary.md/json), paired tests vs base, the judge audit and the figures over every variant."""
    from mubench.core.progress import log
    from mubench.report.tables import run_report

    summary = run_report(_params(params), RESULTS, BUILT, REPORTS, AUDIT_LABELS)
    log(f"[report] {len(summary['rows'])} rows -> {REPORTS}/summary.md, trilemma.png")


@app.command()
@stage
def verify(result: Annotated[str | None, typer.Argument(metavar="[MODEL/VARIANT]",
                                                        help="one result (default: every result of params)")] = None,
           params: ParamsOpt = Path("params.yaml")) -> None:
    """Walk results back to their sources without re-running anything: metrics -> checkpoint (weights re-hashed)
    -> method + hyperparameters -> base -> corpus -> built sets -> raw files (pinned sha256) -> code -> dvc.lock.
    Exit 1 with one line at the first broken link."""
    from rich.console import Console
    from rich.tree import Tree

    from mubench.tools.verify import BrokenLink, verify_results

    p = _params(params)
    targets = [(m, v) for m in p.models for v in p.variants()]
    if result is not None:
        model_name, _, variant = result.partition("/")
        _member(model_name, p.models, "models")
        _member(variant, p.variants(), "the variants (base + METHOD-seedS per method and seed)")
        targets = [(model_name, variant)]
    dirs = {"results": RESULTS, "models": MODELS, "corpus": CORPUS, "built": BUILT, "raw": RAW,
            "model_attacks": MODEL_ATTACK_FITS}
    try:
        links = verify_results(p, targets, dirs, Path.cwd())
    except BrokenLink as exc:
        raise RuntimeError(f"verify: {exc}") from None
    tree = Tree(f"verified: {len(targets)} result(s)")

    def add(node, link):
        branch = node.add(f"[bold]{link.label}[/bold]: {link.detail}")
        for child in link.children:
            add(branch, child)

    for link in links:
        add(tree, link)
    Console(width=160, highlight=False).print(tree)


data_app = typer.Typer(no_args_is_help=True, help="The dataset catalog: list, fetch, verify.")
app.add_typer(data_app, name="data")
MirrorOpt = Annotated[Path | None, typer.Option("--mirror", help="a local mirror directory (default: "
                                                                 "$MUBENCH_MIRROR)")]


@data_app.command("list")
@stage
def data_list() -> None:
    """Every catalog dataset: role, rows (when fetched), license, sources, fetched or not."""
    from rich.console import Console
    from rich.table import Table

    from mubench.core.io import read_json
    from mubench.datasets import DATASETS

    table = Table(title=f"mubench datasets ({len(DATASETS.names())})")
    for column in ("name", "role", "rows", "license", "sources", "fetched"):
        table.add_column(column, overflow="fold")
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        prov_file = RAW / name / "provenance.json"
        prov = read_json(prov_file) if prov_file.is_file() else None
        table.add_row(name, spec.role, str(prov["rows"]) if prov else "–", spec.license,
                      "\n".join(s.describe() for s in spec.sources),
                      prov["source"].get("describe", prov["source"]["kind"]) if prov else "no")
    Console(width=160).print(table)


@data_app.command("fetch")
@stage
def data_fetch(name: Annotated[str | None, typer.Argument(help="dataset name (or --all)")] = None,
               fetch_all: Annotated[bool, typer.Option("--all", help="every catalog dataset")] = False,
               mirror: MirrorOpt = None, params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch datasets into data/raw/ (a configured mirror first, then params' data.sources kinds)."""
    from mubench.datasets import DATASETS
    from mubench.datasets.fetch import REMOTE_KINDS, FetchError
    from mubench.datasets.fetch import fetch as do_fetch

    if bool(name) == fetch_all:
        raise ConfigError("name one dataset or pass --all")
    kinds = load_params(params).data.sources if params.is_file() else list(REMOTE_KINDS)
    names = DATASETS.names() if fetch_all else [DATASETS.get(name).name]
    failed = []
    for item in names:
        try:
            prov = do_fetch(item, RAW, log=lambda m: typer.echo(m, err=True), mirror=mirror, kinds=kinds)
            typer.echo(f"{item}: {prov['rows']} rows from {prov['source']['describe']}")
        except FetchError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed.append(item)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(names)} dataset(s) could not be fetched: {', '.join(failed)}")


@data_app.command("pin")
@stage
def data_pin(name: Annotated[str, typer.Argument(help="a dataset with a Hub source")]) -> None:
    """Record the Hub revision and file sha256 of NAME's Hub source in mubench/datasets/hub_pins.json (needs the
    Hub; review and commit the file)."""
    from mubench.datasets import DATASETS
    from mubench.datasets.catalog import HubSource
    from mubench.datasets.fetch import pin_hub

    hub = [s for s in DATASETS.get(name).sources if isinstance(s, HubSource)]
    if not hub:
        raise ConfigError(f"dataset '{name}' has no Hub source")
    for source in hub:
        pins = pin_hub(source)
        files = ", ".join(f"{path} {digest[:12]}…" for path, digest in pins["files"].items())
        typer.echo(f"{source.repo}@{pins['revision']}: {files}")


@data_app.command("verify")
@stage
def data_verify() -> None:
    """Re-hash every fetched file against its provenance.json (non-zero exit on any mismatch)."""
    from mubench.datasets import DATASETS
    from mubench.datasets.fetch import verify

    fetched = [n for n in DATASETS.names() if (RAW / n / "provenance.json").is_file()]
    problems = [p for n in fetched for p in verify(n, RAW)]
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise RuntimeError(f"{len(problems)} problem(s) in {len(fetched)} fetched dataset(s)")
    typer.echo(f"{len(fetched)} fetched dataset(s) verified: {', '.join(fetched) or 'none'}")


judge_app = typer.Typer(no_args_is_help=True, help="Judge tools: agreement with human labels.")
app.add_typer(judge_app, name="judge")


def _judge_options(params: Path) -> dict:
    return load_params(params).judge.options if params.is_file() else {}


@judge_app.command("validate")
@stage
def judge_validate(judge: Annotated[str, typer.Option("--judge", help="judge name")],
                   labels: Annotated[Path, typer.Option("--labels", help="CSV: prompt, completion, label "
                                                                   "(1 = refusal)")],
                   as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
                   params: ParamsOpt = Path("params.yaml")) -> None:
    """Accuracy, precision, recall and Cohen's kappa of a judge against human refusal labels."""
    import json

    from mubench.judges import get_judge
    from mubench.scoring.agreement import read_labels, validate

    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such labels file")
    result = validate(get_judge(judge, _judge_options(params)), read_labels(labels))
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("accuracy", "precision", "recall", "kappa", "n")}))
    else:
        typer.echo(f"{judge} on {labels} (n={result['n']}): accuracy {result['accuracy']:.3f}, precision "
                   f"{result['precision']:.3f}, recall {result['recall']:.3f}, kappa {result['kappa']:.3f}")


@judge_app.command("labels")
@stage
def judge_labels(out_dir: Annotated[Path, typer.Argument(help="where to write the CSVs")] = JUDGE_LABELS) -> None:
    """Export the human-labelled refusal sets of the pinned pyrit wheel as labels CSVs into OUT_DIR (created if
    missing; only its three files are written, each atomically: nothing else in OUT_DIR is touched)."""
    from mubench.core.io import write_json
    from mubench.scoring.agreement import export_pyrit_labels

    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a directory")
    provenance = export_pyrit_labels(out_dir)
    write_json(out_dir / "provenance.json", provenance)
    typer.echo(f"{out_dir}: {', '.join(provenance)}")


@judge_app.command("audit-sample")
@stage
def judge_audit_sample(n: Annotated[int, typer.Option("--n", help="responses to sample", min=1)] = 200,
                       out: Annotated[Path, typer.Option("--out", help="labels CSV to write (label column "
                                                                       "empty)")] = AUDIT_LABELS,
                       sheet: Annotated[Path | None, typer.Option("--sheet", help="also write the texts to "
                                                                                  "label here (keep it out of "
                                                                                  "git)")] = None,
                       seed: Annotated[int, typer.Option("--seed")] = 0,
                       params: ParamsOpt = Path("params.yaml")) -> None:
    """Draw the judge-audit sample from this run's samples: N responses spread over every variant and attack."""
    import csv
    import io

    from mubench.core.io import atomic_write_text, read_jsonl
    from mubench.scoring.audit import KEY_COLUMNS, sample_keys

    p = _params(params)
    if out.exists():
        raise ConfigError(f"{out}: exists; labels are never overwritten (move it away to draw a new sample)")
    rows = {(m, v): read_jsonl(RESULTS / m / v / "samples" / "safety.jsonl") for m in p.models for v in p.variants()}
    picked = sample_keys(rows, n, seed)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*KEY_COLUMNS, "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**k, "label": ""} for k in picked)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, buffer.getvalue())
    if sheet is not None:
        by_key = {(m, v, r["attack"], r["id"]): r for (m, v), rs in rows.items() for r in rs}
        lines = []
        for i, k in enumerate(picked, start=2):
            r = by_key[(k["model"], k["variant"], k["attack"], k["id"])]
            lines.append(f"### line {i}: {k['variant']} {k['attack']} {k['id']}\nREQUEST: {r.get('goal', r['prompt'])}"
                         f"\nREPLY: {r.get('judged_text') or r['response']}\n")
        atomic_write_text(sheet, "\n".join(lines))
    typer.echo(f"{out}: {len(picked)} responses to label (see {out.parent}/GUIDE.md)")


@judge_app.command("agreement")
@stage
def judge_agreement(labels_dir: Annotated[Path, typer.Argument()] = JUDGE_LABELS,
                    out: Annotated[Path, typer.Option("--out")] = RESULTS / "judges" / "agreement.json",
                    params: ParamsOpt = Path("params.yaml")) -> None:
    """Agreement of this run's keyword-type judges with every labels CSV in LABELS_DIR (a DVC metric)."""
    from mubench.core.io import write_json
    from mubench.scoring.agreement import agreement_report

    result = agreement_report(_params(params), labels_dir)
    write_json(out, result)
    typer.echo("\n".join(f"{k} {s}: kappa {v[s]['kappa']:.3f}, accuracy {v[s]['accuracy']:.3f}"
                         for k, v in result.items() for s in v if s != "used_for"))


sweep_app = typer.Typer(no_args_is_help=True, help="Dose-response sweeps as DVC experiments (README).")
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("queue")
@stage
def sweep_queue(param: Annotated[str, typer.Option("--param", help="the strength knob: lr or steps")] = "lr",
                factors: Annotated[list[float], typer.Option("--factors", help="multiples of each method's "
                                                                               "setting (repeat the option)")]
                = [0.5, 2.0, 4.0],  # noqa: B006 - typer reads the default
                methods: Annotated[list[str] | None, typer.Option("--methods", help="default: params.yaml "
                                                                                    "methods")] = None,
                dry_run: Annotated[bool, typer.Option("--dry-run", help="print the commands only")] = False,
                params: ParamsOpt = Path("params.yaml")) -> None:
    """Queue one DVC experiment per method and factor (`dvc exp run --queue -S method_params.M.PARAM=V`); then
    run them with `dvc queue start -j N` and read them back with `mubench sweep report`."""
    import shlex
    import subprocess

    from mubench.tools.sweep import queue_commands

    p = _params(params)
    commands = queue_commands(p, param, factors, methods or p.methods)
    if not dry_run and shutil.which("dvc") is None:
        raise RuntimeError("dvc: not found on PATH; activate the project's environment (`source .venv/bin/activate`)")
    for command in commands:
        typer.echo(shlex.join(command))
        if not dry_run:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    if not dry_run:
        typer.echo(f"{len(commands)} experiment(s) queued; run them: dvc queue start -j 2")


@sweep_app.command("report")
@stage
def sweep_report(param: Annotated[str, typer.Option("--param", help="the knob the sweep changed")] = "lr",
                 out: Annotated[Path, typer.Option("--out", help="figures folder; the CSV is OUT.csv")]
                 = REPORTS / "dose_response") -> None:
    """Dose-response figures from the finished experiments derived from HEAD plus the committed run (factor 1):
    ASR, over-safety, degenerate outputs and drift against each method's strength."""
    from mubench.tools.sweep import collect, experiment_revs, write_report

    revs = experiment_revs()
    points = collect(param, revs)
    written = write_report(points, out)
    typer.echo(f"{len(revs)} experiment(s), {len(points)} point(s): {out.with_suffix('.csv')}, "
               f"{len(written)} figure(s) in {out}/")


@app.command()
@stage
def profile(name: Annotated[str, typer.Argument(help="a file profiles/NAME.yaml")]) -> None:
    """Switch profile: validate profiles/NAME.yaml and make it the params.yaml the pipeline reads."""
    from mubench.core.registry import check_slug

    try:
        check_slug(name, "profile")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    source = PROFILES / f"{name}.yaml"
    if not source.is_file():
        names = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        raise ConfigError(f"profile '{name}' not found; allowed: {', '.join(names)}")
    load_params(source)
    tmp = Path(".params.yaml.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace("params.yaml")
    typer.echo(f"params.yaml <- {source}; run `dvc repro`")


def main() -> None:  # pragma: no cover
    app(prog_name="mubench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
