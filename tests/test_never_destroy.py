"""Never destroy a user's files, never serve a wrong number with exit 0 (the fault matrix of the issue).

Each case runs the real CLI in a scratch repository (a git checkout with tracked .gitignore files and a user's
file) where files could be destroyed, and asserts the exit code, the one error line, and that nothing outside
the stage's outputs changed (the tree is hashed before and after).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from mubench.cli import app
from tests.conftest import ROOT

MIRROR = ROOT.parent / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not (MIRROR / "MANIFEST.tsv").is_file(), reason="no ../shared/datasets mirror")
USER_FILES = {"README.md": "my notes\n", "data/.gitignore": "/raw\n", "models/.gitignore": "/tiny-llama\n",
              "results/.gitignore": "/tiny-llama\n", "data/mine/keep.txt": "a user's file\n"}


def scratch_params() -> dict:
    """The tiny profile on datasets the local mirror holds (no download)."""
    raw = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text(encoding="utf-8"))
    raw["datasets"] = ["advbench", "harmbench", "xstest", "arc-challenge"]
    raw["data"].update(sources=["url"], oversafety=["xstest"], utility=["arc-challenge"],
                       retain_source="arc-challenge", drift_source="arc-challenge")
    raw["methods"] = ["ga"]
    raw["method_params"] = {"ga": raw["method_params"]["ga"]}
    raw["jailbreaks"] = {"template": ["prefix_injection"], "fitted": [], "seed_per_dataset": 2, "params": {}}
    return raw


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the .git folder included), by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def unchanged_outside(before: dict[str, str], after: dict[str, str], *outputs: str) -> None:
    def outside(files):
        return {k: v for k, v in files.items() if not any(k == o or k.startswith(o + "/") for o in outputs)}

    assert outside(after) == outside(before)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(result, code: int, *fragments: str) -> str:
    """Assert the exit code and a single `error:` line (no traceback) holding every fragment."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == code, result.output
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def make_scratch(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for name, text in USER_FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    (path / "params.yaml").write_text(yaml.safe_dump(scratch_params(), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A scratch repository after fetch, build, attack and model (the tiny random model): the state later
    stages start from. Tests copy it before they touch anything."""
    root = make_scratch(tmp_path_factory.mktemp("prepared") / "repo")
    patcher = pytest.MonkeyPatch()
    patcher.chdir(root)
    patcher.setenv("MUBENCH_MIRROR", str(MIRROR))
    try:
        for name in scratch_params()["datasets"]:
            assert cli("fetch", name).exit_code == 0
        for args in (["build"], ["jailbreak", "prefix_injection"], ["model", "tiny-llama"]):
            result = cli(*args)
            assert result.exit_code == 0, result.output
    finally:
        patcher.undo()
    return root


@pytest.fixture()
def repo(prepared, tmp_path, monkeypatch):
    work = tmp_path / "repo"
    shutil.copytree(prepared, work, symlinks=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MUBENCH_MIRROR", str(MIRROR))
    return work


@pytest.fixture()
def empty_repo(tmp_path, monkeypatch):
    work = make_scratch(tmp_path / "repo")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MUBENCH_MIRROR", str(MIRROR))
    return work


def edit_params(root: Path, change) -> None:
    raw = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    change(raw)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


# ------------------------------------------------------------------ writes never remove what is not theirs
def test_judge_labels_into_a_used_folder_keeps_everything_in_it(repo):
    before = tree(repo)
    result = cli("judge", "labels", "data")
    assert result.exit_code == 0, result.output
    after = tree(repo)
    written = ["data/refusal.csv", "data/refusal_extra.csv", "data/provenance.json"]
    unchanged_outside(before, after, *written)
    assert all(name in after for name in written)


def test_judge_labels_into_the_working_directory_keeps_the_repository(repo):
    before = tree(repo)
    assert cli("judge", "labels", ".").exit_code == 0
    unchanged_outside(before, tree(repo), "refusal.csv", "refusal_extra.csv", "provenance.json")


@pytest.mark.parametrize("name", ["../..", "..", "../../escape", "a/b", ".hidden"])
def test_a_model_name_that_is_not_a_slug_is_refused_by_check_and_by_the_stage(empty_repo, name):
    edit_params(empty_repo, lambda raw: raw.update(models=[name], model_zoo={name: raw["model_zoo"]["tiny-llama"]}))
    before = tree(empty_repo)
    one_error(cli("check"), 2, "cannot be used as a folder name")
    one_error(cli("model", name), 2, "cannot be used as a folder name")
    assert tree(empty_repo) == before


def test_a_stage_name_argument_outside_params_is_refused(repo):
    before = tree(repo)
    one_error(cli("model", "../.."), 2, "'../..' is not in models")
    one_error(cli("unlearn", "../..", "ga"), 2, "'../..' is not in models")
    one_error(cli("evaluate", "tiny-llama", "../.."), 2, "is not in the variants")
    one_error(cli("profile", "../params"), 2, "cannot be used as a folder name")
    assert tree(repo) == before


def test_a_stage_does_not_replace_a_folder_it_did_not_write(repo):
    # a user's folder where the build output goes: refused before any work, nothing changed
    shutil.rmtree(repo / "data" / "built")
    (repo / "data" / "built").mkdir()
    (repo / "data" / "built" / "notes.txt").write_text("mine\n")
    before = tree(repo)
    one_error(cli("build"), 1, "data/built", "not a previous output of `mubench build`")
    assert tree(repo) == before


def test_a_stage_replaces_its_own_previous_output_and_sweeps_leftovers(repo):
    leftover = repo / "data" / ".built.abcd1234.tmp"
    leftover.mkdir()
    (leftover / "half.jsonl").write_text("{}\n")
    old = tree(repo)
    assert cli("build").exit_code == 0
    new = tree(repo)
    assert not leftover.exists()
    assert {k: v for k, v in new.items() if k.startswith("data/built/")} == \
        {k: v for k, v in old.items() if k.startswith("data/built/")}
    assert (repo / "data" / "built" / ".mubench-output").read_text() == "mubench build\n"


def test_atomic_dir_refuses_the_working_directory_and_files(tmp_path, monkeypatch):
    from mubench.core.io import atomic_dir
    from mubench.core.outputs import UnsafeOutputError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    for target in (Path("."), tmp_path.parent, Path("keep.txt")):
        with pytest.raises(UnsafeOutputError), atomic_dir(target, "mubench test") as tmp:
            (tmp / "f").write_text("y")
    assert (tmp_path / "keep.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_temporary_folders_are_ignored_by_dvc_and_the_cache_never_hardlinks(tmp_path):
    work = tmp_path / "w"
    shutil.copytree(ROOT / ".dvc", work / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copy(ROOT / ".dvcignore", work / ".dvcignore")
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    paths = ["data/raw/.advbench.abcd1234.tmp/harmful.csv", "mubench/__pycache__/io.cpython-311.pyc"]
    proc = subprocess.run([dvc, "check-ignore", *paths], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split() == paths, proc.stdout + proc.stderr
    types = subprocess.run([dvc, "config", "cache.type"], cwd=work, capture_output=True, text=True).stdout
    assert "hardlink" not in types and "symlink" not in types and "copy" in types


# ------------------------------------------------------------------ content, not labels
def test_weights_replaced_after_saving_are_an_error_not_a_result(repo):
    base = repo / "models" / "tiny-llama" / "base" / "model.safetensors"
    weights = load_file(base)
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, base, metadata={"format": "pt"})
    before = tree(repo)
    one_error(cli("unlearn", "tiny-llama", "ga"), 1, "model.safetensors: sha256", "re-run")
    one_error(cli("evaluate", "tiny-llama", "base"), 1, "model.safetensors: sha256")
    assert tree(repo) == before


def test_truncated_and_missing_checkpoints_are_one_line(repo):
    base = repo / "models" / "tiny-llama" / "base" / "model.safetensors"
    base.write_bytes(base.read_bytes()[:1000])
    before = tree(repo)
    one_error(cli("evaluate", "tiny-llama", "base"), 1, "model.safetensors: sha256")
    shutil.rmtree(repo / "models" / "tiny-llama")
    one_error(cli("unlearn", "tiny-llama", "ga"), 1, "models/tiny-llama/base: no mubench checkpoint here")
    assert not (repo / "models" / "tiny-llama").exists()
    unchanged_outside(before, tree(repo), "models/tiny-llama")


def test_a_cached_response_that_fails_its_checksum_is_generated_again(tmp_path, tiny_model, tokenizer):
    from mubench.engine.generate import DecodeParams, GenerationCache, chat_text, generate
    from mubench.engine.identity import generation_context

    params = DecodeParams(max_new_tokens=6)
    prompts = ["Name a colour.", "Say hello."]
    fresh = generate(tiny_model, tokenizer, prompts, params, 2)
    cache = GenerationCache(tmp_path / "gen.sqlite")
    assert generate(tiny_model, tokenizer, prompts, params, 2, "hash", cache) == fresh
    with sqlite3.connect(tmp_path / "gen.sqlite") as db:
        db.execute("UPDATE responses SET response = 'I cannot help with that.' WHERE rowid = 1")
    cache = GenerationCache(tmp_path / "gen.sqlite")
    assert generate(tiny_model, tokenizer, prompts, params, 2, "hash", cache) == fresh
    assert cache.rejected == 1
    context = generation_context("hash", tiny_model, tokenizer, 2)
    keys = [GenerationCache.key(context, chat_text(tokenizer, p), params) for p in prompts]
    found = GenerationCache(tmp_path / "gen.sqlite").get_many(keys)  # stored again (the store keeps no order)
    assert [found[k] for k in keys] == fresh


# ------------------------------------------------------------------ training guards
@pytest.mark.parametrize("value", [".inf", "1.0e+30", ".nan"])
def test_non_finite_or_absurd_learning_rates_are_refused_by_validation(empty_repo, value):
    text = (empty_repo / "params.yaml").read_text().replace("lr: 0.001", f"lr: {value}", 1)
    (empty_repo / "params.yaml").write_text(text)
    one_error(cli("check"), 2, "method_params.ga.lr")


def test_a_non_finite_loss_stops_the_stage_and_saves_nothing(repo):
    base = repo / "models" / "tiny-llama" / "base"
    weights = load_file(base / "model.safetensors")
    name = next(k for k in weights if "layers.0.mlp.up_proj" in k)
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, base / "model.safetensors", metadata={"format": "pt"})
    # re-record the weights' hash, as a stage that saved NaN weights would have
    from mubench.core.io import read_json, sha256_file, write_json
    from mubench.engine.models import checkpoint_hash_from_meta

    meta = read_json(base / "mubench.json")
    meta["weights_sha256"] = {"model.safetensors": sha256_file(base / "model.safetensors")}
    meta["model_hash"] = checkpoint_hash_from_meta(meta)
    write_json(base / "mubench.json", meta)
    before = tree(repo)
    one_error(cli("unlearn", "tiny-llama", "ga"), 1, "unlearn ga: step 1: non-finite loss (loss nan",
              "nothing was saved")
    assert tree(repo) == before


def test_finite_checks():
    from mubench.training.loop import NonFiniteError, all_finite, check_finite_terms

    assert all_finite([torch.ones(3), torch.zeros(2)]) and not all_finite([torch.tensor([1.0, float("inf")])])
    inf = float("inf")
    assert not all_finite([torch.ones(2), torch.tensor([inf, -inf, 1.0])])  # the two infinities cancel to NaN
    assert not all_finite([torch.ones(2, dtype=torch.bfloat16), torch.tensor([float("nan"), 0.0])])
    assert not all_finite([torch.tensor([[1.0, 2.0], [-inf, 3.0]], dtype=torch.bfloat16), torch.ones(3)])
    assert all_finite([torch.full((4,), 1e30), torch.ones(2, dtype=torch.bfloat16)])  # large, finite
    assert all_finite([])
    check_finite_terms("ga", 1, {"loss": -3.0})
    with pytest.raises(NonFiniteError, match="step 4: non-finite loss \\(loss 1, retain_nll inf\\)"):
        check_finite_terms("npo", 4, {"loss": 1.0, "retain_nll": float("inf")})


# ------------------------------------------------------------------ sizes
def test_a_size_above_what_a_dataset_holds_is_an_error_at_build(repo):
    before = tree(repo)
    edit_params(repo, lambda raw: raw["data"]["sizes"].update(harmful_per_dataset=100000))
    one_error(cli("build"), 1, "data.sizes.harmful_per_dataset = 100000", "advbench has only 520 rows")
    edit_params(repo, lambda raw: raw["data"]["sizes"].update(harmful_per_dataset=4, forget=100000))
    one_error(cli("build"), 1, "data.sizes.forget = 100000", "the forget pool (advbench minus the evaluation")
    unchanged_outside(before, tree(repo), "params.yaml")


def test_all_takes_every_row(repo):
    edit_params(repo, lambda raw: raw["data"]["sizes"].update(oversafety_per_dataset="all"))
    assert cli("build").exit_code == 0
    assert len((repo / "data" / "built" / "oversafety.jsonl").read_text().splitlines()) == 250  # XSTest safe
    # every ARC question for utility leaves no retain pool: an error naming the pool, not a silent cap
    edit_params(repo, lambda raw: raw["data"]["sizes"].update(utility_per_task="all"))
    one_error(cli("build"), 1, "data.sizes.retain = 8, but the retain pool (arc-challenge minus")


def test_attack_seeds_above_the_harmful_prompts_are_refused(repo):
    edit_params(repo, lambda raw: raw["jailbreaks"].update(seed_per_dataset=1000))
    one_error(cli("check"), 2, "jailbreaks.seed_per_dataset = 1000")


# ------------------------------------------------------------------ error paths: one line, file and row
def test_build_verifies_the_raw_files_it_reads(repo):
    raw = repo / "data" / "raw" / "advbench" / "harmful_behaviors.csv"
    raw.write_text(raw.read_text() + "tampered,row\n")
    before = tree(repo)
    one_error(cli("build"), 1, "advbench: harmful_behaviors.csv: expected sha256", "mubench fetch advbench")
    assert tree(repo) == before


@pytest.mark.parametrize(("line", "problem"), [("[1, 2]", "line 2: expected a JSON object, got list"),
                                                ('{"id": 1,', "line 2: not valid JSON")])
def test_a_broken_jsonl_line_names_the_file_and_line(repo, line, problem):
    harmful = repo / "data" / "built" / "harmful.jsonl"
    rows = harmful.read_text().splitlines()
    harmful.write_text("\n".join([rows[0], line, *rows[1:]]) + "\n")
    before = tree(repo)
    one_error(cli("jailbreak", "prefix_injection"), 1, f"data/built/harmful.jsonl: {problem}")
    assert tree(repo) == before


def test_params_that_are_not_utf8_or_repeat_a_key_are_one_line(empty_repo):
    params = empty_repo / "params.yaml"
    text = params.read_text()
    params.write_bytes(text.replace("seed: 0", "seed: 0 # caf\xe9").encode("latin-1"))
    one_error(cli("check"), 2, "params.yaml: not UTF-8 text")
    params.write_text(text + "seed: 1\n")
    one_error(cli("check"), 2, "key 'seed' appears twice")


def test_labels_csv_with_a_bom_reads_and_one_in_latin1_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = "prompt,completion,label\nHi,I cannot help with that.,1\nHi,Hello there!,0\n"
    Path("bom.csv").write_bytes(body.encode("utf-8-sig"))
    result = cli("judge", "validate", "--judge", "refusal_keywords", "--labels", "bom.csv", "--json",
                 "--params", "none.yaml")
    assert result.exit_code == 0 and '"accuracy": 1.0' in result.stdout, result.output
    Path("latin.csv").write_bytes((body + "Caf\xe9,ok,0\n").encode("latin-1"))
    one_error(cli("judge", "validate", "--judge", "refusal_keywords", "--labels", "latin.csv",
                  "--params", "none.yaml"), 1, "latin.csv: not UTF-8 text")


def test_unknown_and_unlisted_methods_exit_2(repo):
    before = tree(repo)
    one_error(cli("unlearn", "tiny-llama", "gaa"), 2, "'gaa' is not a known method")
    one_error(cli("unlearn", "tiny-llama", "npo"), 2, "'npo' is not in methods of this run")
    assert tree(repo) == before


def test_an_unreadable_generation_cache_is_moved_aside(tmp_path, tiny_model, tokenizer):
    from mubench.engine.generate import DecodeParams, GenerationCache, generate

    path = tmp_path / "generations.sqlite"
    path.write_bytes(b"not a database " * 100)
    cache = GenerationCache(path)
    params = DecodeParams(max_new_tokens=4)
    assert generate(tiny_model, tokenizer, ["Say hello."], params, 1, "hash", cache) == \
        generate(tiny_model, tokenizer, ["Say hello."], params, 1)
    assert (tmp_path / "generations.sqlite.corrupt").read_bytes().startswith(b"not a database")


def test_outputs_get_the_mode_of_normal_files_and_folders(tmp_path, monkeypatch):
    from mubench.core.io import atomic_dir, write_json

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "out", "mubench test") as tmp:
            write_json(tmp / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "a.json").stat().st_mode & 0o777 == 0o644


def test_json_and_dataset_readers_name_the_file_and_line(tmp_path):
    from mubench.core.io import read_json
    from mubench.datasets.catalog import MalformedDataError
    from mubench.datasets.readers import read_csv

    bad = tmp_path / "corpus.json"
    bad.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(ValueError, match=f"^{bad}: line 4: not valid JSON"):
        read_json(bad)
    latin = tmp_path / "rows.csv"
    latin.write_bytes("goal,target\nCaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(MalformedDataError, match=f"^{latin}: row -: not UTF-8 text"):
        list(read_csv(latin, {"goal"}))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("goal,target\r\nHi,x\r\n".encode("utf-8-sig"))
    assert list(read_csv(bom, {"goal"})) == [(2, {"goal": "Hi", "target": "x"})]


def test_auto_device_says_so_when_a_gpu_is_there_but_unusable(monkeypatch, capsys):
    from mubench.core import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "all")
    assert runtime.pick_device("auto") == "cpu"
    assert "[device] a GPU is exposed but torch" in capsys.readouterr().err
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)
    assert runtime.pick_device("auto") == "cpu" and capsys.readouterr().err == ""
    with pytest.raises(RuntimeError, match="torch sees no usable GPU"):
        runtime.pick_device("cuda")
