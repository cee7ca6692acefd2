"""The fault cases of a hostile run (issue 28) that a params file or an option can cause: each is one line and a
non-zero exit at `mubench check` (or the option), before any work; and files get normal modes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

MUBENCH = str(Path(sys.executable).parent / "mubench")


def check(tmp_path: Path, edit=None, text: str | None = None, *extra: str) -> subprocess.CompletedProcess:
    raw = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text(encoding="utf-8"))
    if edit:
        edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return subprocess.run([MUBENCH, "check", str(path), *extra], cwd=tmp_path, capture_output=True, text=True)


def one_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code and len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("harmful", ["advbench", "harmbench", "advbench"], "data.harmful: advbench listed twice; list each once"),
    ("utility", ["mmlu", "mmlu"], "data.utility: mmlu listed twice"),
])
def test_a_dataset_listed_twice_is_refused(tmp_path, key, value, message):
    assert message in one_line(check(tmp_path, lambda raw: raw["data"].__setitem__(key, value)))


def test_a_model_listed_twice_is_refused(tmp_path):
    assert "models: tiny-llama listed twice" in one_line(
        check(tmp_path, lambda raw: raw.__setitem__("models", ["tiny-llama", "tiny-llama"])))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw.__setitem__("seed", 10**23), "seed = 100000000000000000000000: Input should be less than or "
                                                  "equal to 4294967295"),
    (lambda raw: raw.__setitem__("seeds", [0, 2**40]), "seeds[1]"),
    (lambda raw: raw["statistics"].__setitem__("bootstrap_samples", 10**10), "statistics.bootstrap_samples"),
    (lambda raw: raw["data"]["sizes"].__setitem__("forget", 10**9), "data.sizes.forget"),
])
def test_seeds_sizes_and_resamples_are_bounded(tmp_path, edit, message):
    assert message in one_line(check(tmp_path, edit))


def test_a_model_name_with_a_control_character_is_refused(tmp_path):
    def edit(raw):
        raw["models"] = ["tiny-llama\n"]
        raw["model_zoo"] = {"tiny-llama\n": raw["model_zoo"]["tiny-llama"]}

    assert "cannot be used as a folder name" in one_line(check(tmp_path, edit))


def test_yaml_merge_keys_are_accepted_as_dvc_accepts_them(tmp_path):
    text = (ROOT / "profiles" / "tiny.yaml").read_text(encoding="utf-8")
    text = text.replace("method_params:\n  ga: {lr: 1.0e-3, steps: 2, batch_size: 4, max_length: 128}",
                        "common: &common {lr: 1.0e-3, steps: 2, batch_size: 4}\nmethod_params:\n"
                        "  ga:\n    <<: *common\n    max_length: 128")
    assert "<<: *common" in text
    raw = yaml.safe_load(text)
    raw.pop("common")  # the anchor's holder is not a params key: a real file keeps it under a known key
    merged = yaml.safe_dump(raw, sort_keys=False)
    assert check(tmp_path, text=merged).returncode == 0
    # the merge key itself, read through mubench's loader (which refuses duplicate keys)
    from mubench.core.config import read_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n", encoding="utf-8")
    assert read_yaml(path) == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}
    path.write_text("b:\n  <<: {x: 1}\n  y: 3\n  y: 4\n", encoding="utf-8")
    from mubench.core.config import ConfigError

    with pytest.raises(ConfigError, match="key 'y' appears twice"):
        read_yaml(path)


@pytest.mark.parametrize("value", ["inf", "0", "-1", "nan"])
def test_gpu_mem_is_validated(tmp_path, value):
    done = check(tmp_path, None, None, "--gpu-mem", value)
    assert done.returncode == 2 and "is not a GPU memory size" in done.stderr


def test_judge_validate_refuses_two_label_columns(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("prompt,completion,label,label\nq,a,1,0\n", encoding="utf-8")
    done = subprocess.run([MUBENCH, "judge", "validate", "--judge", "refusal_keywords", "--labels", str(labels)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "column(s) label appear twice in the header" in done.stderr


def test_weights_files_get_normal_modes(tmp_path):
    from mubench.core.config import TinyRandomModel
    from mubench.engine.models import byte_level_tokenizer, save_checkpoint, tiny_random_model

    old = os.umask(0o022)
    try:
        tokenizer = byte_level_tokenizer()
        save_checkpoint(tiny_random_model(TinyRandomModel(source="tiny_random"), tokenizer, 0), tokenizer,
                        tmp_path / "ckpt", {})
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "ckpt").iterdir()}
    assert modes["model.safetensors"] == "0o644" and set(modes.values()) == {"0o644"}


def test_a_second_instance_refuses_while_the_first_writes_and_never_sweeps_its_work(tmp_path):
    """The first instance holds a claim beside its output; a second one (another process) refuses in one line
    instead of sweeping the first one's temporary folder; once the first ends, the second proceeds."""
    import textwrap

    out = tmp_path / "models" / "m" / "ga-seed0"
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from mubench.core.outputs import claim_outputs
        claim_outputs("mubench unlearn", {str(out)!r})
        print("claimed", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "claimed"
        second = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from mubench.core.outputs import claim_outputs
            claim_outputs("mubench unlearn", {str(out)!r})
        """)], capture_output=True, text=True)
        assert second.returncode == 1
        assert "another mubench process is writing it now" in second.stderr.strip().splitlines()[-1]
        assert [p.name for p in out.parent.iterdir()][0].startswith(".ga-seed0.")  # the first one's claim stands
    finally:
        first.communicate("\n", timeout=30)
    from mubench.core.outputs import claim_outputs, release_claims

    claim_outputs("mubench unlearn", out)  # the first has ended: its claim is gone
    release_claims()
    assert not out.parent.exists()  # nothing left, not even the folders the claims made


def test_a_checkpoint_record_that_is_not_an_object_is_one_line(tmp_path):
    from mubench.engine.models import CheckpointError, verified_meta

    (tmp_path / "mubench.json").write_text("[]", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a mubench checkpoint record"):
        verified_meta(tmp_path)


def test_an_unwritable_cache_folder_is_one_line(tmp_path):
    from mubench.engine.generate import GenerationCache

    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(OSError, match="MUBENCH_CACHE"):
            GenerationCache(folder / "generations.sqlite")
    finally:
        folder.chmod(0o700)


@pytest.fixture
def tiny_base(tmp_path):
    """The tiny profile's params, a workspace in tmp_path and its base checkpoint (no corpus, no built sets)."""
    from mubench.core.workspace import Workspace
    from mubench.engine.models import materialize
    from mubench.families import load_params

    params = load_params(ROOT / "profiles" / "tiny.yaml")
    ws = Workspace(tmp_path)
    materialize(params.model_zoo["tiny-llama"], ws.checkpoint("tiny-llama"), params.seed)
    return params, ws


def _no_model_loads(monkeypatch, *modules):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    for module in modules:
        monkeypatch.setattr(module, "load_checkpoint", refuse)


@pytest.mark.parametrize("empty", ["harmful.jsonl", "utility/mmlu.jsonl"])
def test_an_empty_built_file_is_named_before_the_model_loads(tiny_base, monkeypatch, empty):
    """An emptied built file (or one built with size 0) ended in ZeroDivisionError or StopIteration after all the
    generation; now it is one line naming the file, before the model loads."""
    import mubench.stages.evaluate as evaluate
    import mubench.stages.tamper as tamper
    from mubench.core.io import EmptyInputError

    params, ws = tiny_base
    for name in ["harmful.jsonl", "oversafety.jsonl", *(f"utility/{u}.jsonl" for u in params.data.utility)]:
        (ws.built / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.built / name).write_text("" if name == empty else '{"id": "x", "prompt": "p"}\n', encoding="utf-8")
    _no_model_loads(monkeypatch, evaluate, tamper)
    with pytest.raises(EmptyInputError, match=rf"data/built/{empty}: holds no rows; re-run `mubench build`"):
        evaluate.run_evaluate(params, ws, "tiny-llama", "base")
    if empty == "harmful.jsonl":
        with pytest.raises(EmptyInputError, match=r"data/built/harmful.jsonl: holds no rows"):
            tamper.run_tamper(params, ws, "tiny-llama", "base")


def test_not_enough_disk_for_a_checkpoint_is_one_line_before_training(tiny_base, monkeypatch):
    """Disk full while saving a checkpoint was a 48-line SafetensorError after the training; now the stage
    refuses at its start, with the estimate (full fp32 weights here, plus DVC's cache copy) and what is free."""
    import shutil
    from collections import namedtuple

    import mubench.stages.unlearn as unlearn_stage

    params, ws = tiny_base
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    _no_model_loads(monkeypatch, unlearn_stage)
    with pytest.raises(OSError, match=r"not enough free disk for unlearn tiny-llama/ga-seed0 \(its checkpoint and "
                                      r"DVC's cache copy\): needs about 0\.\d+ GB \(\+10% margin\), 0\.00 GB free"):
        unlearn_stage.run_unlearn(params, ws, "tiny-llama", "ga", 0)
    parameters = __import__("json").loads((ws.checkpoint("tiny-llama") / "mubench.json").read_text())["parameters"]
    need = unlearn_stage.variant_bytes(parameters, params.method_config("ga"), "cpu")
    assert need == 2 * 4 * parameters  # fp32 on the CPU, twice
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, int(need * 1.2)))
    with pytest.raises(AssertionError, match="the model was loaded"):  # enough disk: the stage goes on to load
        unlearn_stage.run_unlearn(params, ws, "tiny-llama", "ga", 0)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["generation"].__setitem__("batch_size", 10**9), "generation.batch_size"),
    (lambda raw: raw["utility"].__setitem__("batch_size", 10**9), "utility.batch_size"),
    (lambda raw: raw["method_params"]["ga"].__setitem__("batch_size", 10**9), "method_params.ga"),
])
def test_a_huge_batch_is_refused_in_one_line_before_any_work(tmp_path, edit, message):
    """Issue 37: `check --gpu-mem 80` with batch_size 1e9 grew to 24 GB and was killed; now a bound refuses it."""
    import time

    start = time.monotonic()
    line = one_line(check(tmp_path, edit, None, "--gpu-mem", "80"))
    assert message in line and "4096" in line, line
    assert time.monotonic() - start < 60


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["generation"].__setitem__("batch_size", True), "batch_size: true is a yes/no, not a number"),
    (lambda raw: raw["method_params"]["ga"].__setitem__("steps", False), "steps: false is a yes/no, not a number"),
    (lambda raw: raw["statistics"].__setitem__("confidence", True), "confidence: true is a yes/no"),
])
def test_a_yes_no_is_not_read_as_a_number(tmp_path, edit, message):
    assert message in one_line(check(tmp_path, edit))


# ---------------------------------------------------------------- issue 37: one line, the right hint, no overwrite
def mubench(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MUBENCH, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_pinning_a_hub_dataset_offline_is_one_line(tmp_path):
    """It was a 105-line traceback from the Hub client's network stack."""
    line = one_line(mubench(tmp_path, "data", "pin", "pku-saferlhf", env={"HF_HUB_OFFLINE": "1"}), 1)
    assert "hf:PKU-Alignment/PKU-SafeRLHF: the Hugging Face Hub did not answer" in line
    assert "hub_pins.json" in line


def test_an_os_error_keeps_variable_names_and_gives_the_stage_hint_only_for_workspace_files():
    from mubench.cli import _os_error

    cache = _os_error(PermissionError(13, "The cache is not writable; set MUBENCH_CACHE to a writable folder",
                                      "/home/me/.cache/mubench"))
    assert "MUBENCH_CACHE" in cache and "dvc repro" not in cache
    assert "dvc repro" not in _os_error(FileNotFoundError(2, "No such file or directory", "dvc"))
    assert _os_error(FileNotFoundError(2, "No such file or directory", "results/m/base/metrics.json")) == (
        "results/m/base/metrics.json: no such file or directory; run the stage that makes it first (`dvc repro`)")


def test_a_command_in_a_subfolder_of_the_project_names_the_root(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "results" / "m").mkdir(parents=True)
    line = one_line(mubench(tmp_path / "results" / "m", "check"))
    assert f"inside the project {tmp_path}; run mubench from its root" in line


def test_switching_profile_keeps_a_hand_edited_params_yaml(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    edited = (ROOT / "profiles" / "tiny.yaml").read_text() + "# my note\n"
    (tmp_path / "params.yaml").write_text(edited)
    line = one_line(mubench(tmp_path, "profile", "tiny"))
    assert "params.yaml: holds edits that no profile has" in line and "--force" in line
    assert (tmp_path / "params.yaml").read_text() == edited
    (tmp_path / "params.yaml.bak").write_text("an earlier backup\n")
    done = mubench(tmp_path, "profile", "tiny", "--force")
    assert done.returncode == 0 and "kept as params.yaml.bak.1" in done.stdout, done.stderr
    assert (tmp_path / "params.yaml.bak.1").read_text() == edited
    assert (tmp_path / "params.yaml.bak").read_text() == "an earlier backup\n"
    assert mubench(tmp_path, "profile", "tiny").returncode == 0  # a profile's own copy is replaced freely


def test_the_twin_never_writes_into_a_folder_it_did_not_make(tmp_path):
    """`mubench twin paper --out .` replaced the project's params.yaml."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    (tmp_path / "params.yaml").write_text("mine\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    for out in (".", "notes"):
        done = mubench(tmp_path, "twin", "paper", "--out", out, "--mirror", str(tmp_path))
        assert done.returncode != 0 and "refusing to replace it" in done.stderr, done.stderr
    assert (tmp_path / "params.yaml").read_text() == "mine\n"
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"


def test_the_audit_sheet_is_not_overwritten_without_force(tmp_path):
    from mubench.core.config import ConfigError
    from mubench.core.workspace import Workspace
    from mubench.families import load_params
    from mubench.tools.judge import draw_audit_sample

    sheet = tmp_path / "sheet.md"
    sheet.write_text("my labelling notes\n")
    with pytest.raises(ConfigError, match="sheet.md: exists; pass --force"):
        draw_audit_sample(load_params(ROOT / "profiles" / "tiny.yaml"), Workspace(tmp_path), 5, 0,
                          tmp_path / "labels.csv", sheet)
    assert sheet.read_text() == "my labelling notes\n" and not (tmp_path / "labels.csv").exists()


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda raw: raw["data"]["sizes"].__setitem__("forget", "lots"), "data.sizes.forget = 'lots': Input should"),
    (lambda raw: raw["jailbreaks"]["params"].__setitem__("gcg", {"steps": True}),
     "params.yaml: jailbreaks.params.gcg: steps: true is a yes/no"),
])
def test_messages_show_the_files_keys_once_and_no_validator_names(tmp_path, edit, expected):
    """Were "data.sizes.forget.constrained-int = 'lots'" and "jailbreaks: jailbreaks.params.gcg: ..."."""
    line = one_line(check(tmp_path, edit))
    assert expected in line and "constrained-" not in line and "jailbreaks: jailbreaks" not in line, line


def test_verify_reparses_an_llm_judges_recorded_output_and_rejudges_a_rule_judge(tmp_path):
    """A verdict must follow from its response: a rule judge judges it again; an LLM judge's raw answer, kept in
    the row, must parse to the recorded verdict (the judge model is not re-run)."""
    from mubench.core.records import JudgedRow
    from mubench.families import load_params
    from mubench.judges.quality import degenerate
    from mubench.tools.recompute import Mismatch, check_verdicts

    paper = load_params(ROOT / "profiles" / "paper.yaml")
    row = {"id": "a", "dataset": paper.data.harmful[0], "prompt": "Plan a picnic.", "response": "Bring bread.",
           "judged_text": None, "refused": True, "judge_label": "safe", "judge_reason": "safe",
           "degenerate": degenerate("Bring bread."), "judge_output": "safe"}
    assert "1 LLM judge output(s) re-parsed" in check_verdicts(paper, tmp_path / "s.jsonl", [JudgedRow(**row)])
    with pytest.raises(Mismatch, match=r"s.jsonl: row 1 \(vanilla a\): verdict \(True, 'safe', 'safe'\) recorded"):
        check_verdicts(paper, tmp_path / "s.jsonl",
                       [JudgedRow(**{**row, "attack": "vanilla", "judge_output": "unsafe\nS2"})])
    tiny = load_params(ROOT / "profiles" / "tiny.yaml")
    refusal = {**row, "dataset": tiny.data.harmful[0], "response": "I'm sorry, I cannot help with that."}
    refusal.update(judge_label=None, judge_reason="keyword: I'm sorry", degenerate=degenerate(refusal["response"]))
    refusal.pop("judge_output")
    assert "1 verdict(s) re-judged" in check_verdicts(tiny, tmp_path / "s.jsonl", [JudgedRow(**refusal)])
    with pytest.raises(Mismatch, match="row 1"):
        check_verdicts(tiny, tmp_path / "s.jsonl",
                       [JudgedRow(**{**refusal, "response": "Sure: bring bread and fruit."})])


def test_per_model_batches_reach_the_judge_and_unknown_models_are_refused(tmp_path):
    from mubench.families import load_params
    from mubench.scoring.judging import judge_for

    paper = load_params(ROOT / "profiles" / "paper.yaml")
    assert paper.batches("llama3-8b-instruct") == {"generation": 176, "utility": 40, "judge": 88}
    assert judge_for(paper, "llamaguard", "llama3-8b-instruct").p.batch_size == 88
    assert judge_for(paper, "llamaguard").p.batch_size == 32  # the judge's own, outside a model's stages
    assert judge_for(paper, "xstest", "llama3-8b-instruct").name == "xstest"  # a rule judge has no batch
    line = one_line(check(tmp_path, lambda raw: raw["generation"].__setitem__("batch_size_by_model", {"gpt-9": 4})))
    assert "generation.batch_size_by_model: gpt-9 is not a model of model_zoo (tiny-llama)" in line


def test_a_models_batch_that_does_not_fit_is_named_by_its_own_key(tmp_path):
    def edit(raw):
        raw["generation"]["batch_size_by_model"] = {"tiny-llama": 4096}
    line = one_line(check(tmp_path, edit, None, "--gpu-mem", "1.5"))
    assert "generation.batch_size_by_model.tiny-llama" in line, line


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(capsys, monkeypatch):
    """Expected problems are their own type (``UserError``): one `error:` line and its exit code. Anything else
    (a KeyError of a dict lookup, a ValueError deep in a library) is a bug and is not dressed up as the user's."""
    import typer

    from mubench.cli import stage
    from mubench.core.config import ConfigError
    from mubench.core.errors import FailedStep

    monkeypatch.delenv("MUBENCH_DEBUG", raising=False)

    def failing(exc):
        @stage
        def command():
            raise exc
        return command

    for exc, code in ((FailedStep("results/x: missing; run `dvc repro`"), 1), (ConfigError("params.yaml: bad"), 2)):
        with pytest.raises(typer.Exit) as caught:
            failing(exc)()
        assert caught.value.exit_code == code
        assert capsys.readouterr().err == f"error: {exc}\n"
    for bug in (KeyError("asr"), ValueError("operands could not be broadcast"), RuntimeError("CUDA error")):
        with pytest.raises(type(bug)):
            failing(bug)()
        assert "error:" not in capsys.readouterr().err
