"""mubench command line: one subcommand per pipeline stage or tool.

This module only parses arguments, validates the params file and the names it is given, and calls a stage
(``mubench.stages``) or a tool (``mubench.tools``); every path comes from the ``Workspace``
(``tests/test_layers.py`` checks all three).
"""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from mubench.core.config import ConfigError, Params
from mubench.core.environment import debug, mirror_root
from mubench.core.errors import FailedStep, UserError
from mubench.core.workspace import Workspace
from mubench.families import load_params
from mubench.families import require_member as _member

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Judge machine unlearning as a safety tool: safety, over-safety and utility at once.")
WS = Workspace()
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to validate and use")]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="a model of params.yaml models")]
VariantArg = Annotated[str, typer.Argument(metavar="VARIANT", help="base or METHOD-seedS")]
VARIANTS = "the variants (base + METHOD-seedS per method and seed)"


@app.callback()
def _at_project_root() -> None:
    """Every path of the workspace is relative to the project root (the records store them so): a command run in
    a subfolder of a project is refused in one line naming the root, rather than reading and writing there."""
    here = Path.cwd().resolve()
    if (here / "dvc.yaml").is_file():
        return
    root = next((p for p in here.parents if (p / "dvc.yaml").is_file()), None)
    if root is not None:
        _fail(f"{here} is inside the project {root}; run mubench from its root (`cd {root}`): the workspace's "
              "paths (params.yaml, data/, results/) are relative to it", 2)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _gpu_mem(value: float | None) -> float | None:
    from mubench.core.config import gpu_memory_gb

    try:
        return gpu_memory_gb(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def stage(func):
    """Turn an expected problem (``UserError``, or a file the system refuses: ``OSError``) into one readable line
    and a non-zero exit (2 for config and name problems); anything else is a bug and keeps its traceback.
    ``MUBENCH_DEBUG=1`` prints the traceback above that line too."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (UserError, OSError) as exc:
            if debug():
                traceback.print_exc()
            if isinstance(exc, UserError):
                _fail(str(exc), exc.exit_code)
            _fail(_os_error(exc), 1)
        finally:
            from mubench.core.outputs import release_claims

            release_claims()  # the outputs' claims end with the stage (several run in one process in tests)

    return wrapper


def _os_error(exc: OSError) -> str:
    """``path: no such file or directory`` rather than ``[Errno 2] ...: 'path'``; a missing file of the workspace
    (data/, models/, results/, reports/) adds which command makes it."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    message = exc.strerror[:1].lower() + exc.strerror[1:]  # the system's "No such file": names keep their case
    made_by_stages = Path(str(exc.filename)).parts[:1] in (("data",), ("models",), ("results",), ("reports",))
    hint = ("; run the stage that makes it first (`dvc repro`)"
            if isinstance(exc, FileNotFoundError) and made_by_stages else "")
    return f"{exc.filename}: {message}{hint}"


def _cell(params: Path, model: str, variant: str) -> Params:
    """The validated params, after checking that (``model``, ``variant``) is a cell of this run."""
    p = load_params(params)
    _member(model, p.models, "models")
    _member(variant, p.variants(), VARIANTS)
    return p


def _say(message: str) -> None:
    typer.echo(message, err=True)


# -- the pipeline stages (dvc.yaml), in the order data flows ------------------------------------------------------

@app.command()
@stage
def fetch(name: Annotated[str, typer.Argument(help="dataset name (see params.yaml datasets)")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch one dataset from its pinned sources into data/raw/NAME (verified by sha256)."""
    from mubench.core.progress import log
    from mubench.stages.fetch import run_fetch

    prov = run_fetch(load_params(params), WS, name, _say)
    log(f"[fetch] {name}: {prov['rows']} rows from {prov['source']['describe']}")


@app.command()
@stage
def build(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build evaluation, forget and retain splits (seeded, stratified, leak-checked) into data/built."""
    from mubench.core.progress import log
    from mubench.stages.build import run_build

    summary = run_build(load_params(params), WS)
    log(f"[build] {summary['counts']}")


@app.command()
@stage
def model(name: ModelArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Save the base checkpoint (fp32 safetensors) and generate its forget/retain corpus."""
    p = load_params(params)
    _member(name, p.models, "models")
    from mubench.stages.model import run_model

    run_model(p, WS, name)


@app.command()
@stage
def jailbreak(name: Annotated[str, typer.Argument(help="a template jailbreak of params.yaml jailbreaks.template")],
              params: ParamsOpt = Path("params.yaml")) -> None:
    """Apply one template jailbreak to the attack seed prompts (data/jailbreaks/NAME/)."""
    p = load_params(params)
    _member(name, p.jailbreaks.template, "jailbreaks.template", "jailbreak")
    from mubench.core.progress import log
    from mubench.stages.jailbreak import run_jailbreak

    n = run_jailbreak(p, WS, name)
    log(f"[jailbreak] {name}: {n} prompts")


@app.command("jailbreak-fit")
@stage
def jailbreak_fit(model_name: ModelArg,
                  name: Annotated[str, typer.Argument(help="a fitted jailbreak (jailbreaks.fitted)")],
                  params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit a jailbreak (ica, gcg) on MODEL's base checkpoint; write data/jailbreaks_fitted/MODEL/NAME/."""
    p = load_params(params)
    _member(model_name, p.models, "models")
    _member(name, p.jailbreaks.fitted, "jailbreaks.fitted", "jailbreak")
    from mubench.core.progress import log
    from mubench.stages.jailbreak_fit import run_jailbreak_fit

    fit = run_jailbreak_fit(p, WS, model_name, name)
    log(f"[jailbreak-fit] {model_name}/{name}: " + ", ".join(
        f"{k} {v}" for k, v in fit.items() if k in ("steps_run", "best_loss", "suffix", "demonstrations")))


@app.command()
@stage
def unlearn(model_name: ModelArg, method: Annotated[str, typer.Argument(metavar="METHOD")],
            seed: Annotated[int | None, typer.Option("--seed", help="one of params.yaml seeds (default: the "
                                                                    "first)")] = None,
            params: ParamsOpt = Path("params.yaml")) -> None:
    """Unlearn with METHOD and SEED from MODEL's base checkpoint into models/MODEL/METHOD-seedSEED."""
    p = load_params(params)
    _member(model_name, p.models, "models")
    _member(method, p.methods, "methods", "method")
    seed = p.seeds[0] if seed is None else seed
    _member(seed, p.seeds, "seeds")
    from mubench.stages.unlearn import run_unlearn

    run_unlearn(p, WS, model_name, method, seed)


@app.command()
@stage
def evaluate(model_name: ModelArg, variant: VariantArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Generate, judge and score one variant; writes results/MODEL/VARIANT/metrics.json + samples."""
    p = _cell(params, model_name, variant)
    from mubench.stages.evaluate import run_evaluate

    run_evaluate(p, WS, model_name, variant)


@app.command()
@stage
def tamper(model_name: ModelArg, variant: VariantArg, params: ParamsOpt = Path("params.yaml")) -> None:
    """Relearn / ablate one variant with every tamper attack (tamper.names) and judge each attacked copy;
    writes results/MODEL/VARIANT/tamper/ (base: first fits the attacks into data/tamper/MODEL)."""
    p = _cell(params, model_name, variant)
    from mubench.stages.tamper import run_tamper

    run_tamper(p, WS, model_name, variant)


@app.command()
@stage
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Tables (summary.md/json), paired tests vs base, the judge audit and the figures over every variant."""
    from mubench.core.progress import log
    from mubench.stages.report import run_report

    summary = run_report(load_params(params), WS)
    log(f"[report] {len(summary['rows'])} rows -> {WS.reports}/summary.md, trilemma.png")


# -- tools -------------------------------------------------------------------------------------------------------

@app.command()
@stage
def check(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml"),
          gpu_mem: Annotated[float | None, typer.Option(
              "--gpu-mem", callback=_gpu_mem, help="also plan every GPU stage against this many GB (default: the "
                                                   "visible GPU's memory, when there is one)")] = None) -> None:
    """Validate a params file; prints what it would run, or one line saying what is wrong (exit 2). With a GPU
    (or --gpu-mem), every accelerator stage is planned (`mubench plan`) and one that cannot fit is refused."""
    from mubench.tools.plan import check as check_params

    for line in check_params(params, WS, gpu_mem):
        typer.echo(line)


@app.command()
@stage
def plan(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml"),
         gpu_mem: Annotated[float | None, typer.Option("--gpu-mem", callback=_gpu_mem,
                                                       help="GB per GPU to check against")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
         gpu: Annotated[str, typer.Option("--gpu", help="the card GPU-hours are for: h100, h200, a100, l40s")] = "h100",
         margin: Annotated[float | None, typer.Option("--margin", min=0.0, max=1.0,
                                                      help="headroom over each planned peak (default 0.10)")] = None,
         gpus: Annotated[list[int] | None, typer.Option("--gpus", min=1, help="also the wall-clock on N GPUs "
                                                        "(repeatable): a list schedule over DVC's stage graph")] = None,
         from_json: Annotated[Path | None, typer.Option("--from-json", help="the wall-clock (--gpus) from a saved "
                                                        "`mubench plan --json` instead of tracing again")] = None,
         propose_batches: Annotated[bool, typer.Option("--propose-batches", help="the largest batch per model "
                                                       "and kind of work that fits --gpu-mem (default 80 GB), "
                                                       "as the params.yaml keys to set")] = False,
         ) -> None:
    """Peak accelerator memory and time of every GPU stage of a profile: each stage's own code run for one
    step on the model's architecture under fake tensors (no weights, no GPU needed), and a roofline per phase for
    the time; with --gpus N, the run's wall-clock on N GPUs. Exit 2 if a stage's peak plus margin and CUDA
    context does not fit --gpu-mem."""
    from mubench.tools.plan import plan as plan_params
    from mubench.tools.plan import propose, replan

    if propose_batches:
        propose(params, WS, gpu_mem, as_json, _say, margin)
        return
    if from_json is not None:
        replan(from_json, params, WS, list(gpus or [1]), as_json, _say)
        return
    plan_params(params, WS, gpu_mem, as_json, _say, gpu, margin, list(gpus or []))


@app.command()
@stage
def verify(result: Annotated[str | None, typer.Argument(metavar="[MODEL/VARIANT]",
                                                        help="one result (default: every result of params)")] = None,
           params: ParamsOpt = Path("params.yaml")) -> None:
    """Walk results back to their sources without re-running anything: metrics -> checkpoint (weights re-hashed)
    -> method + hyperparameters -> base -> corpus -> built sets -> raw files (pinned sha256) -> code -> dvc.lock.
    Exit 1 with one line at the first broken link."""
    from mubench.tools.verify import BrokenLink, print_tree, verify_results

    p = load_params(params)
    targets = [(m, v) for m in p.models for v in p.variants()]
    if result is not None:
        model_name, _, variant = result.partition("/")
        _cell(params, model_name, variant)
        targets = [(model_name, variant)]
    try:
        links = verify_results(p, WS, targets)
    except BrokenLink as exc:
        raise FailedStep(f"verify: {exc}") from None
    print_tree(links, len(targets))


@app.command()
@stage
def profile(name: Annotated[str, typer.Argument(help="a file profiles/NAME.yaml")],
            force: Annotated[bool, typer.Option("--force", help="replace a params.yaml that no profile holds "
                                                                "(it is kept as params.yaml.bak)")] = False) -> None:
    """Switch profile: validate profiles/NAME.yaml and make it the params.yaml the pipeline reads. A hand-edited
    params.yaml is kept: refused, or with --force backed up as params.yaml.bak."""
    from mubench.tools.profile import switch_profile

    source, backup = switch_profile(WS, name, force)
    typer.echo(f"params.yaml <- {source}" + (f" (your edited params.yaml is kept as {backup})" if backup else "")
               + "; run `dvc repro`")


@app.command()
@stage
def compare(other: Annotated[Path, typer.Argument(help="the other run: a checkout of the same params (for a DVC "
                                                       "revision: `git worktree add DIR REV && dvc checkout` there)")],
            params: ParamsOpt = Path("params.yaml"),
            max_flips: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of a rate's prompts whose "
                                                                            "verdict may change")] = 0.05,
            alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="McNemar level: a significant change is "
                                                                        "out of tolerance")] = 0.05,
            rtol: Annotated[float, typer.Option(min=0.0, help="relative tolerance of continuous values "
                                                              "(drift)")] = 0.01,
            json_out: Annotated[bool, typer.Option("--json", help="the whole report as JSON")] = False) -> None:
    """A replication report: this run against OTHER, per variant and metric, with changed verdicts (paired test),
    continuous values (relative tolerance) and changed responses. Exit 0 when every difference is within
    tolerance, 1 otherwise."""
    from mubench.tools.compare import Tolerance, as_json, compare_runs, render

    if not (other / "results").is_dir():
        raise ConfigError(f"{other}: no results/ folder; pass the root of the other run's checkout")
    tol = Tolerance(max_flips=max_flips, alpha=alpha, rtol=rtol)
    report = compare_runs(load_params(params), WS, Workspace(other.resolve()), tol)
    typer.echo(as_json(report, tol) if json_out else render(report, tol))
    if not report.ok:
        bad = [f"{r.model}/{r.variant} {r.metric}" for r in report.rows if not r.ok]
        raise FailedStep(f"compare: {len(bad) + len(report.problems)} difference(s) out of tolerance: "
                           + "; ".join((report.problems + bad)[:3]))


@app.command()
@stage
def doctor(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml"),
           as_json: Annotated[bool, typer.Option("--json", help="the table as JSON")] = False) -> None:
    """Preflight before GPU-hours: params, GPUs and memory against the plan, Hub token and access, chat templates
    and end tokens, disk, CUDA and compiler. One table; exit 1 on any BLOCKER."""
    from mubench.tools.doctor import as_json as to_json
    from mubench.tools.doctor import doctor as run_doctor
    from mubench.tools.doctor import render

    rows = run_doctor(params, WS)
    typer.echo(to_json(rows) if as_json else render(rows))
    blockers = [r for r in rows if r.status == "BLOCKER"]
    if blockers:
        raise FailedStep(f"doctor: {len(blockers)} blocker(s): {'; '.join(r.check for r in blockers)}")


@app.command()
@stage
def twin(name: Annotated[str, typer.Argument(help="a GPU profile, profiles/NAME.yaml")],
         out: Annotated[Path, typer.Option("--out", help="where the twin goes (params.yaml, hub/, env)")] = Path(
             "twin"),
         mirror: Annotated[Path | None, typer.Option("--mirror", help="public datasets for the stand-ins (default: "
                                                                     "$MUBENCH_MIRROR)")] = None,
         methods: Annotated[str | None, typer.Option("--methods", help="comma-separated subset of the profile's "
                                                                       "methods (default: all)")] = None) -> None:
    """A CPU twin of a GPU profile: random models of each architecture and stand-in Hub datasets in an offline Hub
    cache, the profile's settings at small sizes. `source OUT/env`, copy OUT/params.yaml, then `dvc repro`."""
    from mubench.tools.twin import make_twin

    root = mirror_root(mirror)
    if root is None or not root.is_dir():
        raise ConfigError("twin: the stand-in Hub datasets are built from public datasets in a mirror; pass "
                          "--mirror DIR or set MUBENCH_MIRROR (e.g. ../shared/datasets)")
    built = make_twin(WS.profiles / f"{name}.yaml", out, root,
                      methods=[m.strip() for m in methods.split(",")] if methods else None)
    typer.echo(f"{out}/params.yaml: twin of {name} — models {[m['repo'] for m in built['models']]}, judges "
               f"{[j['repo'] for j in built['judges']]}, stand-in datasets {built['datasets']}; `source {out}/env`")


@app.command()
@stage
def readme(check_only: Annotated[bool, typer.Option("--check", help="exit 1 if a block is stale; write "
                                                                  "nothing")] = False) -> None:
    """Copy the report's main table and findings (reports/summary.md, reports/findings.md) into the generated
    blocks of README.md and docs/results.md."""
    from mubench.tools.readme import sync_all

    for page, changed in sync_all(WS.root, WS.reports, check_only).items():
        typer.echo(f"{page}: " + (f"updated ({', '.join(changed)})" if changed else "up to date"))


@app.command()
@stage
def docs(check_only: Annotated[bool, typer.Option("--check", help="exit 1 if a page is stale; write "
                                                                "nothing")] = False) -> None:
    """Write the pages generated from the code: docs/cli.md (every command) and the error list of
    docs/troubleshooting.md."""
    from mubench.tools.reference import sync_docs

    changed = sync_docs(WS.root, typer.main.get_command(app), check_only)
    typer.echo(", ".join(changed) + ": updated" if changed else "docs/cli.md, docs/troubleshooting.md: up to date")


data_app = typer.Typer(no_args_is_help=True, help="The dataset catalog: list, fetch, pin, verify.")
app.add_typer(data_app, name="data")
MirrorOpt = Annotated[Path | None, typer.Option("--mirror", help="a local mirror directory (default: "
                                                                 "$MUBENCH_MIRROR)")]


@data_app.command("list")
@stage
def data_list() -> None:
    """Every catalog dataset: role, rows (when fetched), license, sources, fetched or not."""
    from mubench.tools.data import print_catalog

    print_catalog(WS)


@data_app.command("fetch")
@stage
def data_fetch(name: Annotated[str | None, typer.Argument(help="dataset name (or --all)")] = None,
               fetch_all: Annotated[bool, typer.Option("--all", help="every catalog dataset")] = False,
               mirror: MirrorOpt = None, params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch datasets into data/raw/ (a configured mirror first, then params' data.sources kinds)."""
    from mubench.tools.data import fetch_many

    if bool(name) == fetch_all:
        raise ConfigError("name one dataset or pass --all")
    kinds = load_params(params).data.sources if params.is_file() else None
    fetch_many(WS, None if fetch_all else [name], kinds, mirror, typer.echo, _say)


@data_app.command("pin")
@stage
def data_pin(name: Annotated[str, typer.Argument(help="a dataset with a Hub source")]) -> None:
    """Record the Hub revision and file sha256 of NAME's Hub source in mubench/datasets/hub_pins.json (needs the
    Hub; review and commit the file)."""
    from mubench.tools.data import pin

    for line in pin(name):
        typer.echo(line)


@data_app.command("manifest")
@stage
def data_manifest(name: Annotated[str, typer.Argument(help="a dataset")],
                  mirror: MirrorOpt = None) -> None:
    """Write NAME's canonical rows (id + content digest, mubench/datasets/rows/NAME.tsv) from its first full
    source; every source is then checked against them at fetch (review and commit the file)."""
    from mubench.tools.data import manifest

    typer.echo(manifest(name, mirror, None))


@data_app.command("verify")
@stage
def data_verify() -> None:
    """Re-hash every fetched file against its provenance.json (non-zero exit on any mismatch)."""
    from mubench.tools.data import verify_fetched

    typer.echo(verify_fetched(WS, _say))


judge_app = typer.Typer(no_args_is_help=True, help="Judge tools: agreement with human labels, the audit sample.")
app.add_typer(judge_app, name="judge")


@judge_app.command("validate")
@stage
def judge_validate(judge: Annotated[str, typer.Option("--judge", help="judge name")],
                   labels: Annotated[Path, typer.Option("--labels", help="CSV: prompt, completion, label "
                                                                   "(1 = refusal)")],
                   as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
                   params: ParamsOpt = Path("params.yaml")) -> None:
    """Accuracy, precision, recall and Cohen's kappa of a judge against human refusal labels."""
    import json

    from mubench.tools.judge import validate_judge

    options = load_params(params).judge.options if params.is_file() else {}
    result = validate_judge(judge, options, labels)
    if as_json:
        typer.echo(json.dumps({k: result[k] for k in ("accuracy", "precision", "recall", "kappa", "n")}))
    else:
        typer.echo(f"{judge} on {labels} (n={result['n']}): accuracy {result['accuracy']:.3f}, precision "
                   f"{result['precision']:.3f}, recall {result['recall']:.3f}, kappa {result['kappa']:.3f}")


@judge_app.command("labels")
@stage
def judge_labels(out_dir: Annotated[Path, typer.Argument(help="where to write the CSVs")] = WS.judge_labels) -> None:
    """Export the human-labelled refusal sets of the pinned pyrit wheel as labels CSVs into OUT_DIR (created if
    missing; only its three files are written, each atomically: nothing else in OUT_DIR is touched)."""
    from mubench.stages.judge_labels import run_judge_labels

    provenance = run_judge_labels(out_dir)
    typer.echo(f"{out_dir}: {', '.join(provenance)}")


@judge_app.command("audit-sample")
@stage
def judge_audit_sample(n: Annotated[int, typer.Option("--n", help="responses to sample", min=1)] = 200,
                       out: Annotated[Path, typer.Option("--out", help="labels CSV to write (label column "
                                                                       "empty)")] = WS.audit_labels,
                       sheet: Annotated[Path | None, typer.Option("--sheet", help="also write the texts to "
                                                                                  "label here (keep it out of "
                                                                                  "git)")] = None,
                       seed: Annotated[int, typer.Option("--seed")] = 0,
                       force: Annotated[bool, typer.Option("--force", help="replace an existing --sheet")] = False,
                       keep: Annotated[Path | None, typer.Option("--keep", help="an earlier labels file: carry "
                                                                                "over every label whose prompt and "
                                                                                "response still occur")] = None,
                       params: ParamsOpt = Path("params.yaml")) -> None:
    """Draw the judge-audit sample from this run's samples: N responses spread over every variant and attack."""
    from mubench.tools.judge import draw_audit_sample

    count = draw_audit_sample(load_params(params), WS, n, seed, out, sheet, force, keep)
    typer.echo(f"{out}: {count} responses to label (see {out.parent}/GUIDE.md)")


@judge_app.command("agreement")
@stage
def judge_agreement(labels_dir: Annotated[Path, typer.Argument()] = WS.judge_labels,
                    out: Annotated[Path, typer.Option("--out")] = WS.judge_agreement,
                    params: ParamsOpt = Path("params.yaml")) -> None:
    """Agreement of this run's keyword-type judges with every labels CSV in LABELS_DIR (a DVC metric)."""
    from mubench.stages.judge_agreement import run_judge_agreement, summary_lines

    result = run_judge_agreement(load_params(params), labels_dir, out)
    typer.echo("\n".join(summary_lines(result)))


sweep_app = typer.Typer(no_args_is_help=True, help="Dose-response sweeps as DVC experiments (docs/results.md).")
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
    from mubench.tools.sweep import queue

    p = load_params(params)
    count = queue(p, param, factors, methods or p.methods, dry_run, typer.echo)
    if not dry_run:
        typer.echo(f"{count} experiment(s) queued; run them: dvc queue start -j 2")


@sweep_app.command("report")
@stage
def sweep_report(param: Annotated[str, typer.Option("--param", help="the knob the sweep changed")] = "lr",
                 out: Annotated[Path, typer.Option("--out", help="figures folder; the CSV is OUT.csv")]
                 = WS.reports / "dose_response") -> None:
    """Dose-response figures from the finished experiments derived from HEAD plus the committed run (factor 1):
    ASR, over-safety, degenerate outputs and drift against each method's strength."""
    from mubench.tools.sweep import report as dose_response

    typer.echo(dose_response(param, out))


submit_app = typer.Typer(no_args_is_help=True, help="Run the out-of-date stages side by side: Slurm jobs or a "
                                                  "local pool, DVC running each stage (docs/cluster.md).")
app.add_typer(submit_app, name="submit")


@submit_app.command("local")
@stage
def submit_local(gpus: Annotated[int, typer.Option("--gpus", min=0, help="run on N GPUs: N stages at once, "
                                                   "each pinned to its own (CUDA_VISIBLE_DEVICES)")] = 0,
                 slots: Annotated[int, typer.Option("--slots", min=0, help="run N stages at once on the CPU "
                                                    "(no GPU pinning)")] = 0) -> None:
    """Run the stages that are out of date in a bounded pool on the local machine, DAG order, never more at once than
    the GPUs (or slots); a failure cancels its downstream, Ctrl-C stops the running stages cleanly."""
    from mubench.tools.engine_local import run_local
    from mubench.tools.submit import prepare, table

    if (gpus > 0) == (slots > 0):
        raise ConfigError("submit local: give exactly one of --gpus N and --slots N (N >= 1)")
    cuda = load_params().device == "cuda"
    runs = run_local(WS.root, lambda: prepare(WS.root, cuda)[0], gpus or slots, gpus > 0, _say)
    typer.echo(table(runs))
    if any(r.state != "done" for r in runs.values()):
        raise typer.Exit(1)


@submit_app.command("slurm")
@stage
def submit_slurm(
        partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
        account: Annotated[str | None, typer.Option(help="Slurm account")] = None,
        qos: Annotated[str | None, typer.Option(help="Slurm QOS")] = None,
        sbatch_arg: Annotated[list[str] | None, typer.Option("--sbatch-arg", help="extra sbatch option, e.g. "
                                                             "--sbatch-arg=--constraint=a100 (repeatable)")] = None,
        prefix: Annotated[str, typer.Option(help="command prefix of every job, e.g. 'apptainer exec --nv "
                                            "mubench.sif'")] = "",
        minutes: Annotated[int, typer.Option(min=1, help="time limit of a stage, in minutes")] = 120,
        minutes_for: Annotated[list[str] | None, typer.Option("--minutes-for", help="GLOB=MINUTES: the time "
                                                              "limit of the stages matching GLOB (repeatable)")] = None,
        mem_gb: Annotated[float | None, typer.Option("--mem-gb", min=0.1, help="memory per job (GB)")] = None,
        gpus: Annotated[int, typer.Option(min=0, help="GPUs per stage that runs a model, when the profile's "
                                          "device is cuda")] = 1,
        cpus: Annotated[int | None, typer.Option(min=1, help="CPUs per job")] = None,
        plan: Annotated[Path | None, typer.Option("--plan", help="a saved `mubench plan --json` of this profile: "
                                                  "GPU stages get its time x --time-factor and are checked "
                                                  "against --gpu-mem")] = None,
        time_factor: Annotated[float, typer.Option(min=1.0, help="a GPU stage's time limit over its planned "
                                                   "time")] = 2.0,
        gpu_mem: Annotated[float | None, typer.Option("--gpu-mem", min=1.0, help="GB of one GPU where the jobs "
                                                      "run (with --plan: a stage that needs more is refused)")] = None,
        wait: Annotated[bool, typer.Option("--wait", help="wait until every job has ended")] = False) -> None:
    """Submit the stages that are out of date as Slurm jobs chained by afterok dependencies (a failed stage's
    dependents are cancelled by Slurm); one log per stage in logs/submit/."""
    from mubench.tools.engine_slurm import SlurmSettings, refuse_if_live, status
    from mubench.tools.engine_slurm import submit_slurm as submit
    from mubench.tools.submit import prepare, table

    limits = {}
    for item in minutes_for or []:
        glob, sep, value = item.rpartition("=")
        if not sep or not glob or not value.isdigit() or int(value) < 1:
            raise ConfigError(f"--minutes-for {item!r}: expected GLOB=MINUTES, e.g. 'unlearn@*=240'")
        limits[glob] = int(value)
    settings = SlurmSettings(partition, account, qos, list(sbatch_arg or []), prefix, minutes, limits, mem_gb,
                             gpus, cpus, time_factor=time_factor, gpu_mem=gpu_mem)
    refuse_if_live(WS.root)
    graph, uses_gpu = prepare(WS.root, load_params().device == "cuda")
    if plan is not None:
        from mubench.tools.makespan import saved_plan_resources

        settings.plan_hours, settings.plan_needs = saved_plan_resources(plan, graph, load_params())
    if not graph.order:
        typer.echo("every stage is up to date: nothing to submit")
        return
    submit(WS.root, graph, settings, uses_gpu, _say)
    if wait:
        runs = status(WS.root, True, _say)
        typer.echo(table(runs))
        if any(r.state != "done" for r in runs.values()):
            raise typer.Exit(1)


@submit_app.command("status")
@stage
def submit_status(wait: Annotated[bool, typer.Option("--wait", help="wait until every job has ended; exit 1 if "
                                                     "one did not succeed")] = False) -> None:
    """The last Slurm submission: what runs, what waits, what failed and where its log is."""
    from mubench.tools.engine_slurm import status
    from mubench.tools.submit import table

    runs = status(WS.root, wait, _say)
    typer.echo(table(runs))
    if wait and any(r.state != "done" for r in runs.values()):
        raise typer.Exit(1)


@submit_app.command("finish", hidden=True)
@stage
def submit_finish() -> None:
    """The closing job: dvc.lock's entries added by the run, in the order a serial `dvc repro` adds them."""
    from mubench.tools.submit import order_lock

    typer.echo("dvc.lock: " + ("entries put in serial order" if order_lock(WS.root) else "already in serial order"))


@submit_app.command("run-stage", hidden=True)
def submit_run_stage(name: Annotated[str, typer.Argument(help="the stage instance, e.g. build")]) -> None:
    """What one job runs: the stage through DVC, stopped cleanly on SIGTERM (scancel, a time limit)."""
    from mubench.tools.submit import run_stage

    raise typer.Exit(run_stage(WS.root, name))


def main() -> None:  # pragma: no cover
    app(prog_name="mubench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
