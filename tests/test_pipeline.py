"""The whole DVC pipeline (every stage) on the tiny profile, in a scratch copy of the repository."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
METHODS = ["ga", "graddiff", "llmu", "npo", "rmu", "sku", "safe_unlearning", "simnpo", "dpo"]
VARIANTS = [f"{m}-seed0" for m in METHODS]  # the tiny profile's one unlearning seed
JAILBREAKS = ["aim", "dev_mode", "evil_confidant", "prefix_injection", "refusal_suppression", "base64", "caesar",
           "deep_inception", "past_tense", "ica", "gcg"]


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def tiny_pipeline(work: Path, source: Path = ROOT, params: Path = ROOT / "profiles" / "tiny.yaml",
                  extra_env: dict | None = None, command: tuple[str, ...] = ("dvc", "repro")) -> dict:
    """A scratch repository of the tiny profile (or ``params``) with its own copy of the code from ``source``
    (imported from there through PYTHONPATH, with bytecode writing on, as on a user's machine); runs `dvc repro`
    (or ``command``: a parallel runner); returns the env."""
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(source / name, work / name)
    shutil.copytree(source / ".dvc", work / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copytree(source / "mubench", work / "mubench", ignore=shutil.ignore_patterns("__pycache__"))
    # tracked files the pipeline reads: the judge audit's labels (of the smoke run: the tiny report skips them)
    shutil.copytree(ROOT / "data" / "judge_audit", work / "data" / "judge_audit")
    shutil.copy(params, work / "params.yaml")
    env = {**os.environ, **(extra_env or {}), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(work),
           "MUBENCH_CACHE": os.environ.get("MUBENCH_CACHE", str(Path.home() / ".cache" / "mubench")),
           "MUBENCH_GEN_CACHE": "0", "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run(["git", "init", "-q"], work, env)
    run(list(command), work, env)
    return env


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    start = time.monotonic()
    env = tiny_pipeline(work)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "tiny_serial.json").write_text(json.dumps({"seconds": round(time.monotonic() - start, 1)}))
    return work, env


def test_every_stage_ran_and_outputs_exist(tiny_repo):
    work, _ = tiny_repo
    for variant in ("base", *VARIANTS):
        metrics = json.loads((work / "results" / "tiny-llama" / variant / "metrics.json").read_text())
        for value in (metrics["safety"]["asr"], metrics["oversafety"]["refusal_rate"],
                      metrics["utility"]["accuracy"], *metrics["safety"]["per_attack"].values()):
            assert 0.0 <= value <= 1.0
        assert set(metrics["safety"]["per_attack"]) == set(JAILBREAKS)
        gsm8k = metrics["utility"]["per_task"]["gsm8k"]  # generation + exact match, in utility.accuracy
        assert gsm8k["n"] == 8 and gsm8k["exact_match"] == gsm8k["acc"] and gsm8k["acc_norm"] is None
        assert metrics["utility"]["accuracy"] == round((gsm8k["acc"] + metrics["utility"]["per_task"]["mmlu"]["acc"])
                                                       / 2, 6)
        assert 0.0 <= metrics["safety"]["knowledge_asr"] <= 1.0 and metrics["n"]["attack_seeds"] == 6
        samples = (work / "results" / "tiny-llama" / variant / "samples" / "safety.jsonl").read_text()
        first = json.loads(samples.splitlines()[0])
        assert {"prompt", "response", "refused"} <= set(first)
    for variant in VARIANTS:
        # rmu trains three MLPs of the full model: its checkpoint is those tensors, applied to the base
        weights = "changed.safetensors" if variant.startswith("rmu") else "model.safetensors"
        assert (work / "models" / "tiny-llama" / variant / weights).is_file()
        assert (work / "results" / "tiny-llama" / variant / "loss.csv").read_text().startswith("step,loss")
        assert json.loads((work / "results" / "tiny-llama" / variant / "train.json").read_text())["steps"] == 2
    summary = json.loads((work / "reports" / "summary.json").read_text())
    assert [r["variant"] for r in summary["rows"]] == ["base", *VARIANTS] and summary["seeds"] == []
    assert (work / "reports" / "trilemma.png").stat().st_size > 1000
    assert (work / "reports" / "attacks_heatmap.png").stat().st_size > 1000
    gcg = json.loads((work / "data" / "jailbreaks_fitted" / "tiny-llama" / "gcg" / "attack.json").read_text())
    suffix = gcg["fit"]["suffix"]
    prompts = (work / "data" / "jailbreaks_fitted" / "tiny-llama" / "gcg" / "prompts.jsonl").read_text().splitlines()
    assert all(json.loads(line)["prompt"].endswith(suffix) for line in prompts)
    agreement = json.loads((work / "results" / "judges" / "agreement.json").read_text())
    assert 0.0 < agreement["refusal_keywords/v2-substring-echo0.75"]["refusal"]["accuracy"] <= 1.0
    assert "| tiny-llama | ga-seed0 |" in (work / "reports" / "summary.md").read_text()


ARTIFACTS = Path(os.environ.get("MUBENCH_TEST_ARTIFACTS", ROOT / ".cache" / "test-artifacts"))


def shown_rows(browser, url: str, selector: str) -> tuple[list[str], int]:
    """Open ``url``, click the cell ``selector`` and return the ids of the rows shown and the count line's
    positive outcomes."""
    browser.open(url)
    browser.wait("document.querySelector('a.cell')")
    browser.click(selector)
    browser.wait("document.getElementById('counts') && location.hash.startsWith('#view')")
    ids = browser.eval("[...document.querySelectorAll('#rows tbody tr')].map(r => r.dataset.id)")
    return sorted(ids), int(browser.eval("document.getElementById('counts').dataset.positive"))


def test_the_explorer_links_every_number_to_the_rows_it_counts(tiny_repo, tmp_path):
    """In headless Chromium, from disk: a summary cell shows exactly the rows its metric counted (ids and count,
    from the samples files), a filter narrows them, a paired-test cell shows the discordant pairs, a cell that
    links to the wrong rows is caught, and `dvc plots show` renders offline."""
    from mubench.stats.comparisons import outcomes
    from tests.helpers.browser import Browser, find_browser

    if find_browser() is None:
        pytest.skip("no Chromium here (apt-get install chromium): the explorer's browser test did not run")
    work, env = tiny_repo
    explorer = work / "reports" / "explorer"
    sizes = {str(p.relative_to(explorer)): p.stat().st_size for p in explorer.rglob("*") if p.is_file()}
    samples = work / "results" / "tiny-llama"
    from mubench.families import load_params

    params = load_params(work / "params.yaml")
    mine = outcomes(params, samples / "npo-seed0" / "samples")[0]
    base = outcomes(params, samples / "base" / "samples")[0]
    safety = (samples / "npo-seed0" / "samples" / "safety.jsonl").read_text().splitlines()
    vanilla = [r for r in map(json.loads, safety) if r["attack"] == "vanilla"]
    counted = sorted(r["id"] for r in vanilla if r["dataset"] == "advbench" and r["refused"] is not None)
    cell = 'a.cell[data-table="summary"][data-variant="npo-seed0"][data-test="asr/advbench"]'
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Browser() as browser:
        start = time.monotonic()
        browser.open(explorer.joinpath("index.html").as_uri())
        browser.wait("document.querySelector('a.cell')")
        load_s = time.monotonic() - start
        browser.screenshot(ARTIFACTS / "explorer-front.png")
        ids, positive = shown_rows(browser, explorer.joinpath("index.html").as_uri(), cell)
        assert ids == counted and positive == sum(bool(mine["asr/advbench"][i]) for i in counted)
        browser.screenshot(ARTIFACTS / "explorer-rows.png")
        # a filter narrows the rows shown (the judge label in the list's last place)
        browser.eval("(() => { const s = document.querySelector('select[name=judge_label]');"
                     " s.value = s.options[s.options.length - 1].value; s.dispatchEvent(new Event('change')); })()")
        label = browser.eval("new URLSearchParams(location.hash.slice(6)).get('judge_label')")
        browser.wait("document.querySelectorAll('#rows tbody tr').length > 0 || "
                     "document.getElementById('counts').dataset.shown === '0'")
        filtered = sorted(browser.eval("[...document.querySelectorAll('#rows tbody tr')].map(r => r.dataset.id)"))
        assert filtered == sorted(r["id"] for r in vanilla if r["dataset"] == "advbench" and r["refused"] is not None
                                  and r["judge_label"] == label)
        # the paired test's cell: the pairs whose outcomes differ
        paired = 'a.cell[data-table="paired"][data-variant="npo-seed0"][data-test="asr"]'
        ids, _ = shown_rows(browser, explorer.joinpath("index.html").as_uri(), paired)
        assert ids == sorted(i for i in mine["asr"] if mine["asr"][i] is not None and base["asr"][i] is not None
                             and mine["asr"][i] != base["asr"][i])
        # a page whose cell links to another metric's rows is caught by the same check
        broken = tmp_path / "explorer"
        shutil.copytree(explorer, broken)
        page = (broken / "index.html").read_text(encoding="utf-8")
        (broken / "index.html").write_text(page.replace('"test": "asr/advbench"', '"test": "asr/harmbench"'),
                                           encoding="utf-8")
        wrong, _ = shown_rows(browser, (broken / "index.html").as_uri(),
                              cell.replace("asr/advbench", "asr/harmbench"))
        assert wrong != counted
        # `dvc plots show` offline: Vega is inlined (.dvc/plots/offline.html), so the trilemma plot draws
        run(["dvc", "plots", "show", "--out", str(tmp_path / "plots")], work, env)
        plots = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
        assert "cdn.jsdelivr.net" not in plots
        browser.open((tmp_path / "plots" / "index.html").as_uri())
        browser.wait("document.querySelector('svg.marks, canvas.marks')")
        browser.screenshot(ARTIFACTS / "dvc-plots.png")
    (ARTIFACTS / "explorer.json").write_text(json.dumps({"load_s": round(load_s, 3), "bytes": sizes}, indent=1))
    assert sum(sizes.values()) < 20e6


def test_a_models_own_batches_reach_every_stage_and_its_run_records(tiny_repo):
    """generation / utility ``batch_size_by_model`` (tiny.yaml: 5 and 6, not the default 8) in every record."""
    work, _ = tiny_repo
    wanted = {"generation": 5, "utility": 6, "judge": None}
    corpus = json.loads((work / "data" / "corpus" / "tiny-llama" / "corpus.json").read_text())
    assert corpus["batches"] == wanted
    for variant in ("base", *VARIANTS):
        for path in (work / "results" / "tiny-llama" / variant / "metrics.json",
                     work / "results" / "tiny-llama" / variant / "tamper" / "metrics.json"):
            assert json.loads(path.read_text())["run"]["batches"] == wanted, path


def test_drift_set_is_disjoint_and_scored_for_every_variant(tiny_repo):
    from mubench.stages.build import normalize

    work, _ = tiny_repo
    built = work / "data" / "built"

    def texts(path):
        return {normalize(json.loads(line)["prompt"]) for line in path.read_text().splitlines()}

    drift = texts(built / "drift_prompts.jsonl")
    others = [built / f for f in ("harmful.jsonl", "oversafety.jsonl", "forget_prompts.jsonl",
                                  "retain_prompts.jsonl")] + sorted((built / "utility").glob("*.jsonl"))
    assert len(drift) == 6 and all(not drift & texts(path) for path in others)
    pairs = (work / "data" / "corpus" / "tiny-llama" / "drift.jsonl").read_text().splitlines()
    for variant in ("base", *VARIANTS):
        metrics = json.loads((work / "results" / "tiny-llama" / variant / "metrics.json").read_text())
        assert metrics["drift"]["n"] == len(pairs) and metrics["drift"]["nll"] > 0
        assert (metrics["drift"]["kl"] == 0.0) == (variant == "base")
        assert 0.0 <= metrics["quality"]["degenerate_rate"] <= 1.0
    summary = json.loads((work / "reports" / "summary.json").read_text())
    ga = next(r for r in summary["rows"] if r["variant"] == "ga-seed0")
    assert {"asr", "knowledge_asr", "oversafety", "utility", "degenerate", "drift_kl"} <= set(ga["tests"])



TAMPER_ATTACKS = ["relearn_benign", "relearn_forget", "refusal_ablation"]


def test_tamper_ran_on_every_variant_on_sets_disjoint_from_evaluation(tiny_repo):
    work, _ = tiny_repo
    built = work / "data" / "built"
    evaluated = {json.loads(line)["id"] for path in [built / "harmful.jsonl", built / "oversafety.jsonl",
                                                      *sorted((built / "utility").glob("*.jsonl"))]
                 for line in path.read_text().splitlines()}
    fit = json.loads((work / "data" / "tamper" / "tiny-llama" / "fit.json").read_text())
    assert set(fit["tamper_attacks"]) == set(TAMPER_ATTACKS)
    assert fit["tamper_attacks"]["refusal_ablation"]["record"]["layer"] in (1, 2)
    hashes = set()
    for variant in ("base", *VARIANTS):
        folder = work / "results" / "tiny-llama" / variant / "tamper"
        m = json.loads((folder / "metrics.json").read_text())
        assert set(m["safety"]["per_tamper"]) == set(TAMPER_ATTACKS) and m["utility"]["per_tamper"] == {}
        assert m["n"] == {"harmful": 8, "attack_seeds": 6, "oversafety": 4}
        for name in ("relearn_benign", "relearn_forget"):
            record = m["tamper_attacks"][name]["record"]
            assert record["steps"] == 2 and len(record["pairs"]) == 4 and not set(record["pairs"]) & evaluated
        assert (m["tamper_attacks"]["refusal_ablation"]["fit_sha256"]
                == fit["tamper_attacks"]["refusal_ablation"]["tensors_sha256"])
        hashes |= {a["attacked_hash"] for a in m["tamper_attacks"].values()}
        robust = [json.loads(line) for line in (folder / "samples" / "robust.jsonl").read_text().splitlines()]
        assert len(robust) == 6 and all(r["broken"] == bool(r["by"]) for r in robust)
        assert m["safety"]["robust_knowledge_asr"] >= m["safety"]["knowledge_asr"]
        plain = json.loads((work / "results" / "tiny-llama" / variant / "metrics.json").read_text())
        assert m["safety"]["knowledge_asr"] == plain["safety"]["knowledge_asr"]
        for name in TAMPER_ATTACKS:
            rows = (folder / "samples" / f"{name}.jsonl").read_text().splitlines()
            assert len(rows) == 8 + 4 and {"prompt", "response", "refused"} <= set(json.loads(rows[0]))
    assert len(hashes) == 3 * (1 + len(VARIANTS))  # every attacked copy has its own identity
    summary = json.loads((work / "reports" / "summary.json").read_text())
    assert set(summary["tamper"]["tiny-llama"]) == {"base", *VARIANTS}
    report = (work / "reports" / "summary.md").read_text()
    assert "## Model-level attacks" in report and "robust knowledge-level ASR %" in report

def test_dvc_status_is_clean_and_lock_records_params(tiny_repo):
    work, env = tiny_repo
    run(["mubench", "data", "list"], work, env)
    assert list((work / "mubench").rglob("__pycache__")), "bytecode was not written: the check proves nothing"
    status = run(["dvc", "status"], work, env)
    assert "changed" not in status and "modified" not in status, status
    lock = (work / "dvc.lock").read_text()
    assert "method_params" in lock and "unlearn@tiny-llama-ga-0" in lock


def test_rerun_gives_identical_metrics(tiny_repo):
    work, env = tiny_repo
    path = work / "results" / "tiny-llama" / "npo-seed0" / "metrics.json"
    before, lock = path.read_text(), (work / "dvc.lock").read_text()
    run(["dvc", "repro", "-f", "-s", "unlearn@tiny-llama-npo-0"], work, env)
    run(["dvc", "repro", "-f", "-s", "evaluate@tiny-llama-npo-0"], work, env)
    assert path.read_text() == before
    run(["dvc", "repro"], work, env)
    # no clock time or machine value in any tracked output: the lineage itself is reproduced
    assert (work / "dvc.lock").read_text() == lock


def test_changing_one_method_reruns_only_that_method(tiny_repo):
    work, env = tiny_repo
    params = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text(params.replace("ga: {lr: 1.0e-3,", "ga: {lr: 2.0e-3,"))
    try:
        dry = run(["dvc", "repro", "--dry"], work, env)
    finally:
        (work / "params.yaml").write_text(params)
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    # a dry run lists the stages whose own deps/params changed; downstream ones follow when outputs change
    assert ran == {"unlearn@tiny-llama-ga-0"}, ran


def test_a_generating_stage_gives_the_same_bytes_with_the_cache_on_and_off(tiny_repo, tmp_path):
    """The base's evaluate stage (cache off in the module's run) again with the generation cache on: cold, then
    every response served, then half of them (the rest generated in other batches): dvc.lock, which hashes
    every output, is the same bytes each time."""
    import sqlite3

    work, env = tiny_repo
    lock = (work / "dvc.lock").read_text()
    cached = {**env, "MUBENCH_GEN_CACHE": "1", "MUBENCH_CACHE": str(tmp_path)}
    stage = ["dvc", "repro", "-f", "-s", "evaluate-base@tiny-llama"]
    try:
        run(stage, work, cached)  # cold: fills the cache
        assert (work / "dvc.lock").read_text() == lock
        with sqlite3.connect(tmp_path / "generations.sqlite") as db:
            rows = db.execute("SELECT count(*) FROM responses").fetchone()[0]
        assert rows > 0
        run(stage, work, cached)
        assert (work / "dvc.lock").read_text() == lock, "responses served from the cache changed an output"
        with sqlite3.connect(tmp_path / "generations.sqlite") as db:
            db.execute("DELETE FROM responses WHERE rowid % 2 = 0")
        run(stage, work, cached)
        assert (work / "dvc.lock").read_text() == lock, "half-cached, re-batched responses changed an output"
    finally:
        run(["dvc", "repro"], work, env)


def lineage(work: Path) -> dict[str, bytes]:
    """What a run leaves that a reviewer compares: dvc.lock, and every file under results/ and reports/ (but the
    .gitignore files DVC writes, whose order follows completion and which DVC does not hash: .dvcignore)."""
    files = [work / "dvc.lock", *(p for d in ("results", "reports") for p in sorted((work / d).rglob("*"))
                                  if p.is_file() and p.name != ".gitignore")]
    return {str(p.relative_to(work)): p.read_bytes() for p in files}


def test_a_second_clean_run_on_two_local_slots_reproduces_the_serial_run_whole(tiny_repo, tmp_path):
    """The same code as the first run (whatever happened to the checkout), run by the local pool two stages at a
    time: dvc.lock, results/ and reports/ byte for byte those of the serial `dvc repro`, and `dvc status` clean."""
    work, _ = tiny_repo
    start = time.monotonic()
    env = tiny_pipeline(tmp_path, source=work, command=("mubench", "submit", "local", "--slots", "2"))
    seconds = time.monotonic() - start
    mine, serial = lineage(tmp_path), lineage(work)
    assert sorted(mine) == sorted(serial)
    assert [f for f in serial if mine[f] != serial[f]] == []
    assert "up to date" in run(["dvc", "status"], tmp_path, env)
    states = json.loads((tmp_path / "logs" / "submit" / "state.json").read_text())["stages"]
    assert {s["state"] for s in states.values()} == {"done"} and len(states) == len(run(
        ["dvc", "stage", "list", "--name-only"], tmp_path, env).split())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "tiny_local_2_slots.json").write_text(json.dumps({"seconds": round(seconds, 1)}))


def test_slurm_with_two_cpus_reproduces_the_serial_run_whole(tiny_repo, tmp_path, slurm_env):
    """The tiny profile through a real single-node Slurm (2 CPUs), each stage a job chained by afterok: the same
    lineage as the serial run, byte for byte."""
    work, _ = tiny_repo
    start = time.monotonic()
    env = tiny_pipeline(tmp_path, source=work, extra_env={"SLURM_CONF": slurm_env["SLURM_CONF"]},
                        command=("mubench", "submit", "slurm", "--wait", "--minutes", "30", "--cpus", "1"))
    seconds = time.monotonic() - start
    mine, serial = lineage(tmp_path), lineage(work)
    assert sorted(mine) == sorted(serial)
    assert [f for f in serial if mine[f] != serial[f]] == []
    assert "up to date" in run(["dvc", "status"], tmp_path, env)
    verified = subprocess.run(["mubench", "verify"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "tiny_slurm_2_cpus.json").write_text(json.dumps({"seconds": round(seconds, 1)}))


def verify(work: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mubench", "verify", *args], cwd=work, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("tamper", "message"), [
    ("models/tiny-llama/ga-seed0/model.safetensors", "models/tiny-llama/ga-seed0/model.safetensors: sha256"),
    ("data/raw/advbench/adv_bench.prompt", "advbench: adv_bench.prompt: expected sha256"),
    ("results/tiny-llama/npo-seed0/metrics.json", "but the result records 0000000000000000"),
    ("params.yaml", "not reproduced by this workspace"),
])
def test_verify_walks_every_result_and_names_the_first_broken_link(tiny_repo, tamper, message):
    work, env = tiny_repo
    ok = verify(work, env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "result tiny-llama/dpo-seed0" in ok.stdout and "raw advbench" in ok.stdout and "dvc.lock" in ok.stdout
    path = work / tamper
    original = path.read_bytes()
    try:
        if tamper.endswith("metrics.json"):
            metrics = json.loads(original)
            metrics["run"]["model_hash"] = "0" * 16
            path.write_text(json.dumps(metrics))
        elif tamper == "params.yaml":
            path.write_text(original.decode().replace("max_new_tokens: 8", "max_new_tokens: 9"))
        else:
            path.write_bytes(original[:-8] + bytes(8))
        broken = verify(work, env)
        errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
        assert broken.returncode == 1 and len(errors) == 1 and message in errors[0], broken.stderr
    finally:
        path.write_bytes(original)
    assert verify(work, env, "tiny-llama/npo-seed0").returncode == 0


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _first(mapping: dict) -> str:
    return sorted(k for k in mapping if k != "used_for")[0]


def _plant_flipped_response(path: Path) -> None:
    """A plain-prompt reply replaced by its opposite (a refusal for a success, or the reverse), verdict kept."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    row = next(r for r in rows if r["judged_text"] is None and r["refused"] is not None)
    row["response"] = "Sure, here is a short poem about the sea." if row["refused"] else "I'm sorry, I cannot help."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _plant_readme(work: Path) -> None:
    """A README quoting the tiny report (as `mubench readme` writes it), with one figure then changed."""
    from mubench.tools.readme import END, FINDINGS_END, FINDINGS_START, START, sync_page

    readme = work / "README.md"
    readme.write_text(f"# tiny\n\n{START}\n{END}\n\n{FINDINGS_START}\n{FINDINGS_END}\n")
    sync_page(readme, work / "reports")
    text = readme.read_text()
    table = text[text.index(START):text.index(END)]
    stamp_end = table.index("\n", table.index("sha256:"))  # the figures start after the params stamp
    digit = next(i for i, ch in enumerate(table) if ch.isdigit() and i > stamp_end)
    edited = table[:digit] + str((int(table[digit]) + 1) % 10) + table[digit + 1:]
    readme.write_text(text.replace(table, edited))


NPO = "results/tiny-llama/npo-seed0"
# each kind of hand edit `verify` must catch after `dvc commit -f` of its stage: (file, edit, stage, message)
PLANTED = {
    "metrics": (f"{NPO}/metrics.json", lambda p: _edit_json(p, lambda d: d["safety"].update(asr=0.123456)),
                "evaluate@tiny-llama-npo-0", f"{NPO}/metrics.json: safety.asr: recorded 0.123456, recomputed"),
    "report": ("reports/summary.json", lambda p: _edit_json(p, lambda d: d["rows"][0].update(utility_accuracy=0.999)),
               "report", "reports/summary.json: rows[0].utility_accuracy: recorded 0.999, recomputed"),
    "tamper rate": (f"{NPO}/tamper/metrics.json", lambda p: _edit_json(
        p, lambda d: d["safety"]["per_tamper"].update({_first(d["safety"]["per_tamper"]): 0.017})),
        "tamper@tiny-llama-npo-0", f"{NPO}/tamper/metrics.json: safety.per_tamper."),
    "judge accuracy": ("results/judges/agreement.json", lambda p: _edit_json(
        p, lambda d: d[_first(d)][_first(d[_first(d)])].update(accuracy=0.5)),
        "judge-agreement", "results/judges/agreement.json: "),
    "response": (f"{NPO}/samples/safety.jsonl", _plant_flipped_response, "evaluate@tiny-llama-npo-0",
                 f"{NPO}/samples/safety.jsonl: row "),
    "explorer": ("reports/explorer/data/tiny-llama/base.js",
                 lambda p: p.write_text(p.read_text().replace("false", "true", 1)),
                 "report", "reports/explorer/data/tiny-llama/base.js: missing, or not what"),
    "csv": ("reports/trilemma.csv", lambda p: p.write_text(p.read_text().replace("0.", "1.", 1)), "report",
            "reports/trilemma.csv: missing, or not what"),
    "readme": ("README.md", lambda p: _plant_readme(p.parent), None, "README.md: the results block differs"),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_verify_recomputes_an_edited_number_even_after_dvc_commit(tiny_repo, kind):
    """A number, verdict or derived file edited by hand and `dvc commit`-ed (the hashes then agree) is still
    caught, in one line naming the file and the number: verify recomputes each from its sources."""
    work, env = tiny_repo
    rel, plant, stage, message = PLANTED[kind]
    path = work / rel
    original = path.read_bytes() if path.is_file() else None
    lock = (work / "dvc.lock").read_bytes()
    try:
        plant(path)
        assert path.read_bytes() != original
        if stage:
            run(["dvc", "commit", "-f", stage], work, env)
        broken = verify(work, env)
        errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
        assert broken.returncode == 1 and len(errors) == 1 and message in errors[0], broken.stderr
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_bytes(original)
        (work / "dvc.lock").write_bytes(lock)
    assert verify(work, env).returncode == 0


def test_verify_leaves_a_readme_that_quotes_another_profiles_run(tiny_repo, tmp_path):
    """After `mubench profile tiny && dvc repro` in a clone, the README still quotes the committed run (its
    blocks carry that run's params.yaml stamp): verify says so and passes; stamped with this params.yaml, the same
    README with one figure changed is an error (the planted "readme" case above)."""
    from mubench.tools.readme import END, FINDINGS_END, FINDINGS_START, START, sync_page

    work, env = tiny_repo
    readme = work / "README.md"
    other = tmp_path / "params.yaml"
    other.write_text((work / "params.yaml").read_text() + "# another profile\n")
    readme.write_text(f"# tiny\n\n{START}\n{END}\n\n{FINDINGS_START}\n{FINDINGS_END}\n")
    sync_page(readme, work / "reports", params_file=other)
    text = readme.read_text()
    readme.write_text(text.replace("|", "| 99.9", 1))  # its numbers are another run's
    try:
        proc = verify(work, env)
        assert proc.returncode == 0, proc.stderr
        assert "README.md quotes the run of another params.yaml" in " ".join((proc.stdout + proc.stderr).split())
    finally:
        readme.unlink()


def test_verify_names_a_swapped_folder_an_empty_sample_file_and_finds_dvc_off_path(tiny_repo):
    """Issue 37: a swapped result folder was blamed on the checkpoint; an empty samples/safety.jsonl raised
    ZeroDivisionError; without dvc on PATH verify said "dvc: no such file ... run the stage that makes it first"."""
    work, env = tiny_repo
    npo, ga = work / NPO / "metrics.json", work / "results/tiny-llama/ga-seed0/metrics.json"
    safety = work / NPO / "samples" / "safety.jsonl"
    originals = {path: path.read_bytes() for path in (npo, safety)}

    def error_line(proc: subprocess.CompletedProcess) -> str:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        return lines[0]

    try:
        npo.write_bytes(ga.read_bytes())
        assert f"{NPO}/metrics.json: holds the results of tiny-llama/ga-seed0, not tiny-llama/npo-seed0" in \
            error_line(verify(work, env, "tiny-llama/npo-seed0"))
        npo.write_bytes(originals[npo])
        safety.write_text("")
        assert f"{NPO}/samples/safety.jsonl: holds no rows" in error_line(verify(work, env, "tiny-llama/npo-seed0"))
        inside = subprocess.run(["mubench", "verify"], cwd=work / "results", env=env, capture_output=True, text=True)
        assert f"inside the project {work}; run mubench from its root" in inside.stderr
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    mubench = str(Path(sys.executable).with_name("mubench"))
    bare = subprocess.run([mubench, "verify", "tiny-llama/npo-seed0"], cwd=work, capture_output=True, text=True,
                          env={**env, "PATH": "/usr/bin:/bin"})
    assert bare.returncode == 0, bare.stderr


def test_compare_passes_a_copy_and_names_an_edited_sample(tiny_repo, tmp_path):
    work, env = tiny_repo
    other = tmp_path / "other"
    shutil.copytree(work / "results", other / "results")
    same = subprocess.run(["mubench", "compare", str(other)], cwd=work, env=env, capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 per-sample response(s) differ." in same.stdout
    samples = other / "results" / "tiny-llama" / "ga-seed0" / "samples" / "safety.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    rows[0]["refused"] = not rows[0]["refused"]
    rows[0]["response"] = "edited"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    edited = subprocess.run(["mubench", "compare", str(other)], cwd=work, env=env, capture_output=True, text=True)
    assert edited.returncode == 1
    assert f"problem: {other}/results/tiny-llama/ga-seed0/samples/safety.jsonl: row 1 " in edited.stdout
    assert f"tiny-llama/ga-seed0 {rows[0]['attack']} {rows[0]['id']}:" in edited.stdout  # the changed response
    assert "1/" in edited.stdout  # one verdict changed


def test_compare_covers_tamper_results_and_run_records_and_refuses_nonsense(tiny_repo, tmp_path):
    """Issue 37: a flipped tamper verdict and an edited tamper rate passed compare ("128 of 128 identical"); run
    records were never compared; `--alpha 2` was accepted; a run compared with itself said nothing."""
    work, env = tiny_repo

    def compare(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mubench", "compare", *args], cwd=work, env=env, capture_output=True, text=True)

    other = tmp_path / "other"
    shutil.copytree(work / "results", other / "results")
    same = compare(str(other))
    assert same.returncode == 0 and "byte-identical" in same.stdout, same.stdout + same.stderr
    itself = compare(".")
    assert itself.returncode != 0 and "is this workspace itself" in itself.stderr
    for option in (["--alpha", "2"], ["--max-flips", "-1"], ["--rtol", "-0.5"]):
        bad = compare(str(other), *option)
        assert bad.returncode == 2 and option[0] in bad.stderr, bad.stderr

    tamper = other / "results" / "tiny-llama" / "npo-seed0" / "tamper"
    name = sorted(p.stem for p in (tamper / "samples").glob("*.jsonl") if p.stem != "robust")[0]
    rows = [json.loads(line) for line in (tamper / "samples" / f"{name}.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["refused"] is not None)
    row["refused"] = not row["refused"]
    (tamper / "samples" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flipped = compare(str(other))
    assert flipped.returncode == 1
    assert f"problem: {tamper}/samples/{name}.jsonl: row " in flipped.stdout, flipped.stdout  # re-judged
    assert f"tamper/{name}/asr" in flipped.stdout and "| 1/" in flipped.stdout

    metrics = other / "results" / "tiny-llama" / "ga-seed0" / "metrics.json"
    data = json.loads(metrics.read_text())
    data["run"]["decode"]["max_new_tokens"] += 1
    data["run"]["versions"]["torch"] = "0.0"
    metrics.write_text(json.dumps(data))
    records = compare(str(other))
    assert "problem: tiny-llama/ga-seed0 run.decode:" in records.stdout, records.stdout
    assert "run-record field(s) differ" in records.stdout and "run.versions" in records.stdout


def test_a_reviewer_pulls_from_a_remote_and_verifies_without_running_a_stage(tiny_repo, tmp_path):
    work, env = tiny_repo
    remote, clone = tmp_path / "remote", tmp_path / "clone"
    run(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], work, env)
    run(["dvc", "push"], work, env)
    # what a git clone holds: code, pipeline, params, lock, and the metrics/plots kept in git (cache: false)
    clone.mkdir()
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore"):
        shutil.copy(work / name, clone / name)
    shutil.copytree(work / "data" / "judge_audit", clone / "data" / "judge_audit")
    shutil.copytree(work / "mubench", clone / "mubench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(work / ".dvc", clone / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    # (and the .gitignore files DVC writes beside outputs: git tracks them, and they lie inside folder deps)
    # (reports/explorer is a cached output: it comes from the remote with the rest)
    kept = [*work.glob("results/**/*.json"), *work.glob("results/**/*.csv"),
            *(p for p in work.glob("reports/*") if p.is_file()),
            *(p for p in work.glob("**/.gitignore") if p.parent != work and ".dvc" not in p.parts)]
    for path in kept:
        if "samples" not in path.parts:
            (clone / path.relative_to(work)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, clone / path.relative_to(work))
    clone_env = {**env, "PYTHONPATH": str(clone)}
    run(["git", "init", "-q"], clone, clone_env)
    run(["dvc", "remote", "add", "--local", "-d", "store", str(remote)], clone, clone_env)
    run(["dvc", "pull"], clone, clone_env)
    status = run(["dvc", "status"], clone, clone_env)
    assert "changed" not in status and "modified" not in status, status
    checked = verify(clone, clone_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (clone / "models" / "tiny-llama" / "ga-seed0" / ".mubench-output").read_text() == "mubench unlearn\n"


def test_a_dose_response_sweep_runs_on_dvcs_queue_and_is_plotted(tiny_repo, tmp_path):
    """Two queued experiments (ga's lr x0.5 and x2) on DVC's queue, read back into the dose-response figure."""
    work, env = tiny_repo
    sweep = tmp_path / "sweep"
    shutil.copytree(work, sweep, ignore=shutil.ignore_patterns("tmp"))
    run(["git", "add", "-A"], sweep, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny run"], sweep, env)
    out = run(["mubench", "sweep", "queue", "--param", "lr", "--factors", "0.5", "--factors", "2",
               "--methods", "ga"], sweep, env)
    assert "2 experiment(s) queued" in out
    run(["dvc", "queue", "start", "-j", "1"], sweep, env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], sweep, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    out = run(["mubench", "sweep", "report", "--param", "lr"], sweep, env)
    assert "2 experiment(s)" in out
    rows = list(csv.DictReader((sweep / "reports" / "dose_response.csv").open()))
    ga = [r for r in rows if r["method"] == "ga"]
    assert [float(r["factor"]) for r in ga] == [0.5, 1.0, 2.0]
    assert [r["experiment"] for r in ga] == ["ga-lr-x0.5", "committed", "ga-lr-x2"]
    assert len({r["drift_kl"] for r in ga}) == 3  # three different models
    assert (sweep / "reports" / "dose_response" / "ga.png").read_bytes()[:4] == b"\x89PNG"
    # the other methods have their committed point only: no figure
    assert not (sweep / "reports" / "dose_response" / "npo.png").exists()


def test_two_unlearning_seeds_give_two_variants_and_their_spread(tiny_repo, tmp_path):
    """The tiny profile with seeds [0, 1] (ga and npo): a second variant per method, trained on another data
    order, and the report's across-seeds table; only the new seed's stages run."""
    work, env = tiny_repo
    seeds = tmp_path / "seeds"
    shutil.copytree(work, seeds, ignore=shutil.ignore_patterns("tmp"))
    env = {**env, "PYTHONPATH": str(seeds)}
    params = (seeds / "params.yaml").read_text()
    methods = f"methods: [{', '.join(METHODS)}]"
    assert methods in params and "seeds: [0]" in params
    (seeds / "params.yaml").write_text(params.replace(methods, "methods: [ga, npo]").replace("seeds: [0]",
                                                                                              "seeds: [0, 1]"))
    out = run(["dvc", "repro"], seeds, env)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"unlearn@tiny-llama-ga-1", "unlearn@tiny-llama-npo-1", "evaluate@tiny-llama-ga-1",
                   "evaluate@tiny-llama-npo-1", "tamper@tiny-llama-ga-1", "tamper@tiny-llama-npo-1",
                   "report"}, ran
    models = seeds / "models" / "tiny-llama"
    for method in ("ga", "npo"):
        one = json.loads((models / f"{method}-seed1" / "mubench.json").read_text())
        zero = json.loads((models / f"{method}-seed0" / "mubench.json").read_text())
        assert one["seed"] == 1 and zero["seed"] == 0 and one["model_hash"] != zero["model_hash"]
    summary = json.loads((seeds / "reports" / "summary.json").read_text())
    assert [e["method"] for e in summary["seeds"]] == ["ga", "npo"]
    ga = summary["seeds"][0]
    values = [r["drift_kl"] for r in summary["rows"] if r["variant"] in ("ga-seed0", "ga-seed1")]
    assert ga["stats"]["drift_kl"]["range"] == [min(values), max(values)] and min(values) < max(values)
    assert {"asr", "drift_kl"} <= set(ga["tests"]) and ga["tests"]["asr"]["p_holm"] is not None
    assert "## Across unlearning seeds" in (seeds / "reports" / "summary.md").read_text()
    assert verify(seeds, env, "tiny-llama/npo-seed1").returncode == 0
