"""mubench command line: one subcommand per pipeline stage (thin wrappers over the stage modules)."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from mubench.config import ConfigError, Params, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Judge machine unlearning as a safety tool: safety, over-safety and utility at once.")

RAW, BUILT, ATTACKS_DIR, CORPUS = Path("data/raw"), Path("data/built"), Path("data/attacks"), Path("data/corpus")
MODELS, RESULTS, REPORTS = Path("models"), Path("results"), Path("reports")
PROFILES = Path("profiles")

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to validate and use")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def stage(func):
    """Turn known failures into one readable line and a non-zero exit (2 for config problems)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(str(exc), 2)
        except (FileNotFoundError, RuntimeError, ValueError, KeyError) as exc:
            _fail(str(exc), 1)

    return wrapper


def _params(path: Path) -> Params:
    return load_params(path)


def _cache():
    if os.environ.get("MUBENCH_GEN_CACHE", "1") == "0":
        return None
    from mubench.data.fetch import cache_dir
    from mubench.generate import GenerationCache

    return GenerationCache(cache_dir() / "generations.sqlite")


@app.command()
@stage
def check(params: Annotated[Path, typer.Argument(help="params file")] = Path("params.yaml")) -> None:
    """Validate a params file; prints what it would run, or one line saying what is wrong (exit 2)."""
    p = _params(params)
    typer.echo(f"{params}: ok — models {p.models}, methods {p.methods}, attacks {p.attacks}, "
               f"datasets {p.datasets}")


@app.command()
@stage
def fetch(name: Annotated[str, typer.Argument(help="dataset name (see params.yaml datasets)")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch one dataset from its pinned sources into data/raw/NAME (verified by sha256)."""
    _params(params)
    from mubench.data import DATASETS
    from mubench.data.fetch import fetch as do_fetch
    from mubench.progress import log

    DATASETS.get(name)
    prov = do_fetch(name, RAW, log=lambda m: typer.echo(m, err=True))
    log(f"[fetch] {name}: {prov['rows']} rows from {prov['source']['kind']}:"
        f"{prov['source'].get('requirement', '')}")


@app.command()
@stage
def build(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build evaluation, forget and retain splits (seeded, stratified, leak-checked) into data/built."""
    from mubench.data.build import build as do_build
    from mubench.progress import log

    summary = do_build(_params(params), RAW, BUILT)
    log(f"[build] {summary['counts']}")


@app.command()
@stage
def model(name: Annotated[str, typer.Argument(help="model name from params.yaml models")],
          params: ParamsOpt = Path("params.yaml")) -> None:
    """Save the base checkpoint (fp32 safetensors) and generate its forget/retain corpus."""
    p = _params(params)
    if name not in p.model_zoo:
        raise ConfigError(f"model '{name}' is not in model_zoo; allowed: {', '.join(sorted(p.model_zoo))}")
    from mubench.corpus import build_model

    build_model(p, name, BUILT, MODELS / name / "base", CORPUS / name, _cache())


@app.command()
@stage
def attack(name: Annotated[str, typer.Argument(help="attack name from params.yaml attacks")],
           params: ParamsOpt = Path("params.yaml")) -> None:
    """Apply one template attack to the harmful evaluation prompts (data/attacks/NAME.jsonl)."""
    _params(params)
    from mubench.attacks import ATTACKS
    from mubench.attacks.stage import run_attack
    from mubench.progress import log

    ATTACKS.get(name)
    n = run_attack(name, BUILT / "harmful.jsonl", ATTACKS_DIR / f"{name}.jsonl")
    log(f"[attack] {name}: {n} prompts")


@app.command()
@stage
def unlearn(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
            method: Annotated[str, typer.Argument(metavar="METHOD")],
            params: ParamsOpt = Path("params.yaml")) -> None:
    """Unlearn with METHOD from MODEL's base checkpoint into models/MODEL/METHOD."""
    p = _params(params)
    from mubench.methods import METHODS
    from mubench.unlearn import run_unlearn

    METHODS.get(method)
    run_unlearn(p, model_name, method, MODELS / model_name / "base", CORPUS / model_name,
                MODELS / model_name / method, RESULTS / model_name / method)


@app.command()
@stage
def evaluate(model_name: Annotated[str, typer.Argument(metavar="MODEL")],
             variant: Annotated[str, typer.Argument(metavar="VARIANT", help="base or a method name")],
             params: ParamsOpt = Path("params.yaml")) -> None:
    """Generate, judge and score one variant; writes results/MODEL/VARIANT/metrics.json + samples."""
    p = _params(params)
    if variant not in p.variants():
        raise ConfigError(f"variant '{variant}' is not in this run; allowed: {', '.join(p.variants())}")
    from mubench.evaluate import run_evaluate

    run_evaluate(p, model_name, variant, MODELS / model_name / variant, BUILT, ATTACKS_DIR,
                 RESULTS / model_name / variant, _cache())


@app.command()
@stage
def report(params: ParamsOpt = Path("params.yaml")) -> None:
    """Tables (summary.md/json) and the trilemma plot over every variant, with deltas vs base."""
    from mubench.progress import log
    from mubench.report import run_report

    summary = run_report(_params(params), RESULTS, BUILT, REPORTS)
    log(f"[report] {len(summary['rows'])} rows -> {REPORTS}/summary.md, trilemma.png")


@app.command()
@stage
def profile(name: Annotated[str, typer.Argument(help="a file profiles/NAME.yaml")]) -> None:
    """Switch profile: validate profiles/NAME.yaml and make it the params.yaml the pipeline reads."""
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
