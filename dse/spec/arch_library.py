"""The architecture library: `arch_specs/NAME.yaml` by name, loaded with optional parameter and
energy-model overrides (what `dse arch show|list` uses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dse.arch.architecture import Architecture
from dse.errors import SpecError, did_you_mean
from dse.spec.library_paths import bundled_dir

REPO_ARCH_SPECS = bundled_dir("arch_specs")  # the library folder (checkout or installed)
CONSTRAINTS_SUFFIX = ".constraints.yaml"


@dataclass
class LoadedArch:
    arch: Architecture
    path: Path
    keep: dict  # {level: (keep, bypass)} from the architecture's keep:/bypass: lists
    constraint_keys: list[str] = field(default_factory=list)  # top-level *constraints keys
    constraints_file: Path | None = None  # NAME.constraints.yaml beside it, if any
    # one line per target of a top-level `sparse_optimizations` (read by `dse model`)
    sparse: list[str] = field(default_factory=list)


def architecture_files(directory: Path = REPO_ARCH_SPECS) -> list[Path]:
    """YAML files of `directory` that hold a loop-nest architecture (constraints files and
    streaming designs excluded)."""
    from dse.spec.streaming_arch import file_is_streaming

    return sorted(p for p in directory.glob("*.yaml")
                  if not p.name.endswith(CONSTRAINTS_SUFFIX) and not file_is_streaming(p))


def streaming_files(directory: Path = REPO_ARCH_SPECS) -> list[Path]:
    """YAML files of `directory` that hold a streaming dataflow design (`kind: streaming`)."""
    from dse.spec.streaming_arch import file_is_streaming

    return sorted(p for p in directory.glob("*.yaml") if file_is_streaming(p))


def resolve(ref: str | Path) -> Path:
    """A file path as given, else arch_specs/REF.yaml."""
    p = Path(ref)
    if p.is_file():
        return p
    cand = REPO_ARCH_SPECS / f"{ref}.yaml"
    if cand.is_file():
        return cand
    names = [f.stem for f in architecture_files() + streaming_files()]
    raise SpecError(f"no architecture '{ref}' (not a file, not in {REPO_ARCH_SPECS})",
                    expected="a YAML file or one of " + ", ".join(names),
                    hint=did_you_mean(str(ref), names))


def constraints_file(path: Path) -> Path | None:
    cand = path.with_name(path.name[: -len(".yaml")] + CONSTRAINTS_SUFFIX)
    return cand if cand.is_file() else None


def load_architecture(ref: str | Path, *, parameters: dict | None = None,
                      energy_model: str | None = None) -> LoadedArch:
    """Read one architecture file (native or Timeloop; an `ERT:` in it is applied)."""
    from dse.spec import native, timeloop
    from dse.spec.yamlload import load_documents

    path = resolve(ref)
    doc = load_documents([path])
    node = doc.data.get("architecture")
    if node is None:
        raise SpecError("no `architecture:` section", file=str(path))
    if isinstance(node, dict) and node.get("kind") == "streaming":
        raise SpecError("a streaming architecture has no loop-nest levels",
                        file=str(path), hint="use `dse run --arch` with it (docs/streaming.md)")
    if isinstance(node, dict) and "kind" in node:
        raise SpecError(f"unknown architecture kind {node['kind']!r}", file=str(path),
                        key_path="architecture.kind", expected="streaming (or no `kind:` for a "
                        "loop-nest architecture)",
                        hint=did_you_mean(str(node["kind"]), ["streaming"]))
    if isinstance(node, dict) and ("levels" in node or "extends" in node):
        arch, keep = native.read_architecture(node, parameters=parameters,
                                              energy_model=energy_model)
    else:
        if parameters or energy_model:
            raise SpecError("--set and --energy-model apply to native architectures only",
                            file=str(path))
        arch, keep = timeloop.read_architecture(node)
    if "ERT" in doc.data:
        arch = timeloop.apply_ert(arch, timeloop.read_ert(doc.data["ERT"], str(path)))
    keys = [str(k) for k in doc.data if "constraints" in str(k)]
    return LoadedArch(arch, path, keep, keys, constraints_file(path),
                      sparse_summary(doc.data.get("sparse_optimizations")))


def sparse_summary(node) -> list[str]:
    """`sparse_optimizations` as one line per target ("DRAM: Inputs UOP/RLE; gating Weights on
    Inputs"), for `dse arch show`; `dse model` reads and checks them against a problem."""
    targets = node.get("targets") if isinstance(node, dict) else None
    lines = []
    for tgt in targets if isinstance(targets, list) else []:
        if not isinstance(tgt, dict):
            continue
        parts = []
        rf = tgt.get("representation_format", tgt.get("representation-format")) or {}
        for ds in (rf.get("data_spaces", rf.get("data-spaces")) or []) if isinstance(
                rf, dict) else []:
            if isinstance(ds, dict):
                fmts = "/".join(str(r.get("format", "?")) for r in ds.get("ranks") or []
                                if isinstance(r, dict))
                st = ds.get("structured")  # dse's N:M declaration (docs/sparse.md)
                nm = (f" {st.get('n')}:{st.get('m')} structured" if isinstance(st, dict)
                      else "")
                parts.append(f"{ds.get('name')} {fmts}{nm}")
        for key in ("action_optimization", "action-optimization"):
            for ao in tgt.get(key) or []:
                if not isinstance(ao, dict):
                    continue
                for opt in ao.get("options") or []:
                    if isinstance(opt, dict):
                        cond = opt.get("condition_on", opt.get("condition-on")) or []
                        parts.append(f"{ao.get('type')} {opt.get('target')} on "
                                     f"{', '.join(map(str, cond))}")
        for key in ("compute_optimization", "compute-optimization"):
            for co in tgt.get(key) or []:
                if isinstance(co, dict):
                    parts.append(f"compute {co.get('type')}")
        lines.append(f"{tgt.get('name')}: " + "; ".join(parts))
    return lines


def parse_settings(items) -> dict[str, float]:
    """['columns=3', 'x=1.5'] -> {'columns': 3, 'x': 1.5} (values are numbers)."""
    from dse.spec.expr import ExpressionError, to_number

    out: dict[str, float] = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        if not sep or not name.strip():
            raise SpecError(f"cannot read setting '{item}'", expected="NAME=VALUE, e.g. columns=3")
        try:
            out[name.strip()] = to_number(value.strip())
        except ExpressionError as exc:
            raise SpecError(f"setting '{item}': {exc}") from None
    return out
