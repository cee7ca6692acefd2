"""``mubench twin PROFILE``: a CPU twin of a GPU profile, so the paper path runs in CI through its real loading code.

The twin keeps every setting of the profile but what a CPU cannot hold:
- each Hub model becomes a randomly initialised model of its own architecture (``mubench/plan/arch``: family,
  attention layout, untied embeddings, dtype) at a small width and depth, with a tokenizer of its family's kind
  (byte-level vocabulary plus the family's special tokens, its chat template: Llama-2 ``[INST]`` with a system
  block, Llama-3 headers with ``<|eot_id|>`` as an extra end token in the generation config, Mistral without a
  system role). Each is saved as a Hub snapshot at the profile's pinned repo and revision in a local cache, so the
  real ``from_pretrained(repo, revision=...)`` runs with ``HF_HUB_OFFLINE=1``;
- each LLM judge the profile uses becomes a twin of its architecture saved the same way. A random judge would
  answer gibberish, so the twin judge is built to answer its verdict word: its attention and MLP outputs are
  zero and its embedding and unembedding rows chain the template's last token to ``unsafe`` and then to its end
  token. The real prompt (the judge's own chat template), generation and parsing code run on every row;
- the Hub-only datasets are written as stand-in files in each dataset's own schema (rows taken from the public
  datasets of the mirror, ``MUBENCH_MIRROR``) into the local Hub cache, pinned in a twin pins file
  (``MUBENCH_HUB_PINS``), and fetched through the real Hub dataset code;
- sizes (rows, steps, tokens, search widths) become small.
The numbers of a twin run mean nothing; that every paper setting runs does.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from mubench.core.errors import InvalidValue
from mubench.core.io import atomic_dir, atomic_write_text
from mubench.core.outputs import check_replaceable

OWNER = "mubench twin"

WIDTH = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}

# Chat templates of each family's kind (the formats documented on the public model cards), for twin tokenizers.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
LLAMA3_TEMPLATE = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


# family -> (special tokens, bos, tokenizer eos, extra end tokens of the generation config, chat template)
class TwinTokenizer(NamedTuple):
    """What a model family's twin tokenizer carries: its special tokens, BOS and EOS, the extra tokens that end a
    generation (its generation config's), and its chat template."""

    specials: list[str]
    bos: str
    eos: str
    extra_end: list[str]
    template: str | None


TWIN_TOKENIZERS: dict[str, TwinTokenizer] = {
    "llama2": TwinTokenizer(["<s>", "</s>", "<unk>"], "<s>", "</s>", [], LLAMA2_TEMPLATE),
    "llama3": TwinTokenizer(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>"], "<|begin_of_text|>", "<|end_of_text|>", ["<|eot_id|>"], LLAMA3_TEMPLATE),
    "mistral": TwinTokenizer(["<s>", "</s>", "<unk>"], "<s>", "</s>", [], MISTRAL_TEMPLATE),
}


def verdict_words() -> list[str]:
    """Every LLM judge's answer words (``LlmJudge.answer_words``), in the registry's order."""
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    entries = [JUDGES.entry(name) for name in JUDGES.names()]
    return [word for cls in entries if isinstance(cls, type) and issubclass(cls, LlmJudge)
            for word in cls.answer_words()]


def family_of(arch: dict) -> str:
    if arch["model_type"] == "mistral":
        return "mistral"
    return "llama3" if arch["vocab_size"] > 100_000 else "llama2"


def arch_config(repo: str) -> dict:
    """The architecture's config.json fields, as ``mubench plan`` reads them."""
    from mubench.plan.judge import hub_arch_file

    path = hub_arch_file(repo)
    if not path.is_file():
        raise FileNotFoundError(f"{repo}: no architecture config {path.name} in mubench/plan/arch; add its "
                                "config.json there to twin it")
    return json.loads(path.read_text(encoding="utf-8"))


def twin_tokenizer(family: str, template: str | None):
    """A byte-level tokenizer with the family's special tokens and chat template (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials, bos, eos, extra_end, _ = TWIN_TOKENIZERS[family]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    backend.add_tokens(verdict_words())  # whole tokens in the twin vocabulary, as in the real ones
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos,
                                        unk_token="<unk>" if "<unk>" in specials else None)
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer, extra_end


def twin_model(arch: dict, tokenizer, extra_end: list[str], seed: int):
    """A random model of ``arch``'s family and layout at a small size (key/value heads keep the GQA ratio)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    config = {k: v for k, v in arch.items() if k not in {"architectures", "torch_dtype"}}
    ratio = arch["num_attention_heads"] // arch.get("num_key_value_heads", arch["num_attention_heads"])
    config.update(WIDTH, num_key_value_heads=WIDTH["num_attention_heads"] // ratio, vocab_size=len(tokenizer),
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
                  initializer_range=0.2)
    model_type = config.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    ends = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(extra_end)]
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=ends if len(ends) > 1 else ends[0])
    return model.to(getattr(torch, arch.get("torch_dtype", "float32")))


def answer_only(model, tokenizer, last: str, answer: str, end: str) -> None:
    """Make ``model`` answer ``answer`` then ``end`` after the token ``last``, whatever comes before: attention
    and MLP outputs zeroed (each position's state is its own embedding), then two embedding/unembedding pairs
    set so that greedy decoding chains last -> answer -> end."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.zero_()
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        ids = tokenizer.convert_tokens_to_ids([last, answer, end])
        basis = torch.eye(emb.shape[1], dtype=emb.dtype)
        for (src, dst), axis in zip(((ids[0], ids[1]), (ids[1], ids[2])), (0, 1), strict=True):
            emb[src] = basis[axis]
            head[dst] = 100 * basis[axis]


def write_snapshot(cache: Path, kind: str, repo: str, revision: str, files: Path) -> Path:
    """Lay ``files`` out as the Hub cache holds a snapshot (``{kind}s--ORG--NAME/snapshots/REV``, ``refs/main``)."""
    root = cache / f"{kind}s--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(files, snapshot)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def save_twin_model(cache: Path, repo: str, revision: str, seed: int, judge=None) -> dict:
    """Build and save the twin of Hub model ``repo`` at ``revision``; returns what was built. ``judge``: the
    ``LlmJudge`` this model stands in for: it carries the judge's chat template and always answers its
    ``flag_answer`` after the judge's prompt."""
    import tempfile

    arch = arch_config(repo)
    family = family_of(arch)
    template = TWIN_TOKENIZERS[family].template if judge is None else judge.chat_template()
    tokenizer, extra_end = twin_tokenizer(family, template)
    model = twin_model(arch, tokenizer, extra_end, seed)
    if judge is not None:
        end = extra_end[0] if extra_end else tokenizer.eos_token
        last = judge.format("q", "a")[-1]  # the prompt's last character; byte-level BPE writes a newline as Ċ
        answer_only(model, tokenizer, {"\n": "Ċ"}.get(last, last), judge.flag_answer, end)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_snapshot(cache, "model", repo, revision, Path(tmp))
    return {"repo": repo, "revision": revision, "family": family, "dtype": arch.get("torch_dtype"),
            "parameters": sum(p.numel() for p in model.parameters()), "chat_template": template is not None}


# ---------------------------------------------------------------- stand-in Hub datasets
def stand_in_files(name: str, mirror: Path, out: Path, n: int) -> None:
    """Files of Hub dataset ``name`` in its own schema, rows taken from public datasets in the mirror: what the
    dataset's own ``stand_in`` writes (``mubench.datasets.stand_in``)."""
    from mubench.datasets import DATASETS

    spec = DATASETS.entry(name)
    if spec.stand_in is None:
        raise InvalidValue(f"{name}: a Hub dataset without a stand_in; give its DatasetSpec one "
                           "(mubench/datasets/stand_in.py says how)")
    spec.stand_in(mirror, out / spec.sources[0].paths[0], n)


def save_stand_ins(cache: Path, names: list[str], mirror: Path, pins_file: Path, n: int = 40) -> dict:
    """Stand-in Hub datasets in the cache, with their revision and sha256 in ``pins_file``."""
    import hashlib
    import tempfile

    from mubench.core.io import sha256_file, write_json
    from mubench.datasets import DATASETS

    pins = {}
    for name in names:
        source = DATASETS.entry(name).sources[0]
        with tempfile.TemporaryDirectory() as tmp:
            stand_in_files(name, mirror, Path(tmp), n)
            files = {rel: sha256_file(Path(tmp) / rel) for rel in source.paths}
            revision = hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()  # noqa: S324 - a name
            write_snapshot(cache, "dataset", source.repo, revision, Path(tmp))
        pins[source.repo] = {"revision": revision, "files": files}
    write_json(pins_file, dict(sorted(pins.items())))
    return pins


# ---------------------------------------------------------------- the twin profile
SMALL = {
    "sizes": {"harmful_per_dataset": 2, "oversafety_per_dataset": 2, "utility_per_task": 3, "forget": 6,
              "retain": 6, "drift": 4},
    "train": {"steps": 2, "batch_size": 2},
    "jailbreaks": {"seed_per_dataset": 1, "gcg": {"steps": 2, "search_width": 8, "topk": 16, "behaviours": 2,
                                                  "eval_batch": 8}},
    "tamper": {"steps": 2, "pairs": 4, "prompts": 4},
    "generation": {"max_new_tokens": 8, "batch_size": 8},
    "max_gen_toks": 8,
}


def twin_params(raw: dict) -> dict:
    """The twin of a profile's params: the same settings, sizes made small, the device the CPU."""
    out = copy.deepcopy(raw)
    out["device"] = "cpu"
    out["data"]["sizes"] = dict(SMALL["sizes"])
    for name, knobs in out.get("method_params", {}).items():
        out["method_params"][name] = {**knobs, **{k: v for k, v in SMALL["train"].items() if k in knobs}}
    jb = out["jailbreaks"]
    jb["seed_per_dataset"] = SMALL["jailbreaks"]["seed_per_dataset"]
    if "gcg" in jb.get("params", {}):
        jb["params"]["gcg"] = {**jb["params"]["gcg"], **SMALL["jailbreaks"]["gcg"]}
    for name, knobs in out.get("tamper", {}).get("params", {}).items():
        small = {k: v for k, v in SMALL["tamper"].items() if k in knobs}
        small.update({k: SMALL["train"]["batch_size"] for k in ("batch_size",) if k in knobs})
        out["tamper"]["params"][name] = {**knobs, **small}
    out["generation"] = {**out["generation"], **SMALL["generation"]}
    gen = out.get("utility", {}).get("generation")
    if gen:
        gen["max_gen_toks"] = SMALL["max_gen_toks"]
    return out


def hub_only(params) -> list[str]:
    """Datasets of a profile whose every source is a Hub repo."""
    from mubench.datasets import DATASETS

    return [n for n in params.datasets if all(s.kind == "hf" for s in DATASETS.entry(n).sources)]


def make_twin(profile: Path, out: Path, mirror: Path, seed: int = 0, methods: list[str] | None = None) -> dict:
    """Write ``out/params.yaml`` (the twin), ``out/hub`` (the offline Hub cache: model, judge and dataset
    snapshots) and ``out/hub_pins.json``; returns a summary. ``out/env`` holds the variables a run needs.
    ``methods``: keep only these of the profile's methods (the rest of the settings unchanged)."""
    import yaml

    from mubench.families import load_params

    source = load_params(profile)
    raw = yaml.safe_load(profile.read_text(encoding="utf-8"))
    check_replaceable(out, OWNER)  # before any work: never a user's folder, never the project root
    with atomic_dir(out, OWNER) as tmp:
        built = _write_twin(profile, raw, source, tmp, mirror, seed, methods)
    env = {"HF_HUB_CACHE": str((out / "hub").resolve()), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MUBENCH_HUB_PINS": str((out / "hub_pins.json").resolve()), "MUBENCH_MIRROR": str(mirror.resolve())}
    atomic_write_text(out / "env", "".join(f"export {k}={v}\n" for k, v in env.items()))
    return {**built, "env": env}


def _write_twin(profile: Path, raw: dict, source, out: Path, mirror: Path, seed: int,
                methods: list[str] | None) -> dict:
    """The twin's params.yaml, Hub cache and pins, written into ``out`` (the temporary folder)."""
    import yaml

    from mubench.core.config import HubModel
    from mubench.families import validate_params
    from mubench.judges import JUDGES
    from mubench.judges.llm import LlmJudge

    cache = out / "hub"
    built: dict[str, Any] = {"models": [], "judges": [], "datasets": []}
    for name in source.models:
        spec = source.model_zoo[name]
        if not isinstance(spec, HubModel):
            raise InvalidValue(f"model_zoo.{name}: only Hub models are twinned (source {spec.source})")
        built["models"].append(save_twin_model(cache, spec.repo, spec.revision, seed))
    for name in {source.judge.safety, source.judge.oversafety}:
        cls = JUDGES.entry(name)
        if issubclass(cls, LlmJudge):
            options = cls.Params(**source.judge.options.get(name, {}))
            built["judges"].append(save_twin_model(cache, options.model, options.revision, seed, judge=cls(options)))
    hub_names = hub_only(source)
    save_stand_ins(cache, hub_names, mirror, out / "hub_pins.json")
    built["datasets"] = hub_names
    twin = twin_params(raw)
    if methods:  # a subset (CI time); each must be one of the profile's
        unknown = [m for m in methods if m not in twin["methods"]]
        if unknown:
            raise InvalidValue(f"twin --methods: {unknown} not in {profile.name}'s methods {twin['methods']}")
        twin["methods"] = [m for m in twin["methods"] if m in methods]
    validate_params(twin)  # the twin must validate like its profile
    header = (f"# CPU twin of {profile.name} (`mubench twin {profile.stem}`): the same settings; random models of "
              "each architecture\n# from the offline Hub cache beside it, stand-in Hub datasets, small sizes. "
              "Numbers mean nothing.\n")
    (out / "params.yaml").write_text(header + yaml.safe_dump(twin, sort_keys=False, width=120), encoding="utf-8")
    return built
