"""Nothing in a Timeloop input is silently dropped (issue #9): constraints written on v0.4
architecture nodes are honoured by `dse map`, `dse run`, `dse sweep` and carried by `dse convert`;
misspelt keys get a did-you-mean; sparse inputs are refused as not modelled yet; `cluster_size`
charges energy per cluster as Timeloop does; `energy_model:` works in a Timeloop architecture.

The constraint checks read the written native mapping.yaml with plain YAML, independently of
dse's readers."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from dse.cli import main
from tests.conftest import TIMELOOP_RAW, TIMELOOP_REFS

EX06_RAW = (TIMELOOP_RAW / "Accelergy-Project" / "timeloop-accelergy-exercises@2ffec69"
            / "workspace" / "tutorial_exercises" / "01_accelergy_timeloop_2020_ispass"
            / "timeloop" / "06-mapper-convlayer-eyeriss")
EX06_ARCH = EX06_RAW / "arch" / "eyeriss_like.yaml"
EX06_PROB = EX06_RAW / "prob" / "VGG02_layer5.yaml"
EX06_MAPPER = EX06_RAW / "mapper" / "mapper.yaml"
EX06_ERT = TIMELOOP_REFS / "ispass_06_mapper_eyeriss" / "inputs" / "timeloop-mapper.ERT.yaml"
RESNET_LAYER = Path(__file__).resolve().parents[1] / "workloads" / "resnet18_conv2_x.yaml"


def dse(*args) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------------ an independent checker


class _TagLoader(yaml.SafeLoader):
    pass


_TagLoader.add_multi_constructor("!", lambda loader, suffix, node: {
    "_tag": suffix, **loader.construct_mapping(node, deep=True)})


def node_constraints(arch_file: Path) -> list[tuple[str, str, dict]]:
    """(level, kind, body) for every temporal/spatial/dataspace constraint on a v0.4 node;
    a container's constraints belong to its `inter_<name>_spatial` level."""
    out = []

    def walk(nodes):
        for n in nodes:
            if "nodes" in n:
                walk(n["nodes"])
                continue
            level = f"inter_{n['name']}_spatial" if n["_tag"] == "Container" else n["name"]
            for kind, body in (n.get("constraints") or {}).items():
                out.append((level, kind, body))

    walk(yaml.load(arch_file.read_text(), Loader=_TagLoader)["architecture"]["nodes"])
    return out


_LOOP = re.compile(r"^([A-Za-z_]+?)=?(\d+)$")


def _loops(text: str | None) -> list[tuple[str, int]]:
    """'M2 C4' (outermost first) -> [(M, 2), (C, 4)]."""
    return [(m.group(1), int(m.group(2))) for m in map(_LOOP.match, (text or "").split())]


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [str(v).replace(" ", "") for v in value or []]


def violations(mapping_file: Path, constraints: list[tuple[str, str, dict]]) -> list[str]:
    """What in a native mapping.yaml breaks the constraints: factors (=, <=, >=), the order of
    the non-unit loops (permutations are innermost first), the X/Y split, keep/bypass."""
    entries = {e["level"]: e for e in yaml.safe_load(mapping_file.read_text())["mapping"]}
    bad = []
    for level, kind, body in constraints:
        e = entries.get(level, {"level": level})
        temporal = _loops(e.get("temporal"))
        spatial = e.get("spatial") or {}
        sx, sy = _loops(spatial.get("X")), _loops(spatial.get("Y"))
        loops = dict(temporal) if kind == "temporal" else dict(sx + sy)
        for f in _as_list(body.get("factors")):
            d, op, n = re.match(r"^(\w+?)(<=|>=|=)(\d+)$", f).groups()
            got = loops.get(d, 1)
            ok = {"=": got == int(n), "<=": got <= int(n), ">=": got >= int(n)}[op]
            if not ok:
                bad.append(f"{level} {kind} {d}={got} breaks {f}")
        perm = _as_list(body.get("permutation"))
        if kind == "temporal" and perm:
            inner = [d for d, n in reversed(temporal) if n > 1]
            want = [d for d in perm if d in inner]
            if inner[:len(want)] != want:
                bad.append(f"{level} loop order {inner} (innermost first), want {want}")
        if kind == "spatial" and "split" in body:
            x_ok = set(perm[:int(body["split"])])
            bad += [f"{level} {d} on X" for d, n in sx if n > 1 and d not in x_ok]
            bad += [f"{level} {d} on Y" for d, n in sy if n > 1 and d in x_ok]
        if kind == "dataspace":
            kept = set(e.get("keep", []))
            bad += [f"{level} bypasses {t}" for t in body.get("keep", []) if t not in kept]
            bad += [f"{level} keeps {t}" for t in body.get("bypass", []) if t in kept]
    return bad


def test_checker_sees_what_the_old_reader_dropped(tmp_path: Path) -> None:
    """The checker itself: the mapping dse found before this change (only keep/bypass of the
    nodes read) breaks the ex06 file's factor and split constraints."""
    old = tmp_path / "mapping.yaml"
    old.write_text(textwrap.dedent("""\
        mapping:
        - {level: DRAM, temporal: R3 C2 P14 Q2 M2, keep: [Weights, Inputs, Outputs]}
        - {level: shared_glb, temporal: M2 C4 Q2 P4, keep: [Inputs, Outputs]}
        - {level: inter_PE_column_spatial, spatial: {X: P2 Q7}}
        - {level: inter_PE_spatial, spatial: {Y: Q2 S3 M2}}
        - {level: ifmap_spad, temporal: Q2 M2, keep: [Inputs]}
        - {level: weights_spad, temporal: C16, keep: [Weights]}
        - {level: psum_spad, temporal: M16, keep: [Outputs]}
        """))
    bad = violations(old, node_constraints(EX06_ARCH))
    assert "ifmap_spad temporal M=2 breaks M=1" in bad
    assert "inter_PE_column_spatial temporal P=2 breaks P=1" not in bad  # spatial, not temporal
    assert "inter_PE_column_spatial spatial P=2 breaks P=1" in bad
    assert "inter_PE_spatial Q on Y" in bad


# ------------------------------------------------------------------ node constraints honoured


def test_map_on_raw_ex06_satisfies_every_node_constraint(tmp_path: Path) -> None:
    """Timeloop's raw ex06 files (v0.4 arch with constraints on its nodes): the mapping `dse
    map` writes satisfies every factor, permutation, split and keep/bypass of the file. Before
    this change only keep/bypass were read and the result 'beat' Timeloop by breaking them."""
    cons = node_constraints(EX06_ARCH)
    assert {k for _, k, _ in cons} == {"temporal", "spatial", "dataspace"}
    out = tmp_path / "map"
    r = dse("map", EX06_ARCH, EX06_PROB, EX06_MAPPER, EX06_ERT, "--out", out, "--max-evals",
            "3000", "-q")
    assert r.exit_code == 0, r.output
    assert violations(out / "mapping.yaml", cons) == []
    # the Timeloop-format map.yaml says the same (split and permutation as Timeloop reads them)
    tl = {(d["target"], d["type"]): d for d in yaml.safe_load((out / "map.yaml").read_text())
          ["mapping"]}
    pe = tl[("inter_PE_spatial", "spatial")]
    x_dims = set(pe["permutation"][:pe["split"]])
    assert not {d for d, n in _loops(pe["factors"]) if n > 1} & x_dims - {"N", "P", "Q", "R"}


def test_raw_v04_nodes_map_like_timeloops_processed_constraints(tmp_path: Path) -> None:
    """Timeloop's front end turns the node constraints into `architecture_constraints` (its
    parsed-processed-input.yaml). Mapping the raw v0.4 files finds exactly the mapping found
    from the processed file: same mapspace."""
    processed = EX06_ERT.parent / "parsed-processed-input.yaml"
    found = {}
    for label, files in (("raw", [EX06_ARCH, EX06_PROB, EX06_MAPPER, EX06_ERT]),
                         ("processed", [processed, EX06_ERT])):
        out = tmp_path / label
        r = dse("map", *files, "--out", out, "--max-evals", "3000", "--seed", "5", "-q")
        assert r.exit_code == 0, r.output
        found[label] = (out / "mapping.yaml").read_text()
    assert found["raw"] == found["processed"]


INLINE_V04 = """\
architecture:
  version: 0.4
  energy_model: table-45nm
  nodes:
  - !Container
    name: system
    attributes: {technology: 45nm}
  - !Component
    name: DRAM
    class: DRAM
    attributes: {width: 64, datawidth: 8}
    constraints:
      temporal: {factors: [N=1, C<=2], permutation: [Q, P, M, C, R, S, N]}
  - !Component
    name: GLB
    class: smartbuffer_SRAM
    attributes: {depth: 2048, width: 64, datawidth: 8}
    constraints:
      dataspace: {keep: [Inputs, Outputs], bypass: [Weights]}
      temporal: {factors: M>=2 R=1 S=1}
  - !Container
    name: PE
    spatial: {meshX: 4, meshY: 4}
    constraints:
      spatial: {permutation: [C, M, N, P, Q, R, S], split: 1, factors: [R=1, S=1, N=1, P=1, Q=1]}
  - !Component
    name: RF
    class: regfile
    attributes: {depth: 64, width: 8, datawidth: 8}
    constraints:
      temporal: {factors: [R=3, S=3, C=1, M=1, N=1], permutation: [S, R]}
  - !Component
    name: mac
    class: intmac
    attributes: {datawidth: 8}
"""
INLINE_PROBLEM = """\
problem:
  version: 1
  type: conv2d
  name: small
  N: 1
  C: 8
  M: 16
  P: 8
  Q: 8
  R: 3
  S: 3
"""


@pytest.fixture()
def inline_arch(tmp_path: Path) -> tuple[Path, Path]:
    arch, prob = tmp_path / "arch.yaml", tmp_path / "prob.yaml"
    arch.write_text(INLINE_V04)
    prob.write_text(INLINE_PROBLEM)
    return arch, prob


def test_map_honours_bounds_permutations_and_split(inline_arch, tmp_path: Path) -> None:
    """`D<=n`, `D>=n`, exact factors, a partial permutation and a split, all on nodes."""
    arch, prob = inline_arch
    out = tmp_path / "map"
    r = dse("map", arch, prob, "--out", out, "--max-evals", "3000", "-q")
    assert r.exit_code == 0, r.output
    found = yaml.safe_load((out / "mapping.yaml").read_text())["mapping"]
    assert violations(out / "mapping.yaml", node_constraints(arch)) == [], found
    glb = next(e for e in found if e["level"] == "GLB")
    assert dict(_loops(glb["temporal"]))["M"] >= 2


def test_run_and_sweep_honour_node_constraints(tmp_path: Path) -> None:
    """`dse run` and `dse sweep` read the same node constraints as `dse map`."""
    cons = node_constraints(EX06_ARCH)
    out = tmp_path / "run"
    r = dse("run", "--arch", EX06_ARCH, "--constraints", EX06_ERT, "--workload", RESNET_LAYER,
            "--out", out, "--store", tmp_path / "store.sqlite", "--max-evals", "2000", "-q")
    assert r.exit_code == 0, r.output
    maps = sorted((out / "mappings").glob("*.yaml"))
    assert maps and all(violations(m, cons) == [] for m in maps)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"sweep": {
        "version": 1, "name": "nodes", "workloads": [str(RESNET_LAYER)],
        "architectures": [{"file": str(EX06_ARCH), "constraints": [str(EX06_ERT)]}],
        "mapper": {"objective": "edp", "max_evals": 2000, "seed": 3}}}))
    r = dse("sweep", sweep, "--out", tmp_path / "sw", "--store", tmp_path / "sw.sqlite", "-q")
    assert r.exit_code == 0, r.output
    maps = sorted((tmp_path / "sw").rglob("mappings/*.yaml"))
    assert maps and all(violations(m, cons) == [] for m in maps)


def test_convert_carries_node_constraints(tmp_path: Path) -> None:
    """`dse convert` writes the node constraints as a `constraints:` section next to the native
    architecture; mapping with the converted file finds the same mapping as with the raw one."""
    conv = tmp_path / "native"
    r = dse("convert", EX06_ARCH, EX06_PROB, "--out", conv)
    assert r.exit_code == 0, r.output
    data = yaml.safe_load((conv / "architecture.yaml").read_text())
    targets = data["constraints"]["targets"]
    assert {(t["target"], t["type"]) for t in targets} == {
        ("inter_PE_column_spatial", "spatial"), ("inter_PE_spatial", "spatial"),
        ("ifmap_spad", "temporal"), ("weights_spad", "temporal"), ("psum_spad", "temporal")}
    levels = {lv.get("name"): lv for lv in data["architecture"]["levels"]}
    assert levels["shared_glb"]["keep"] == ["Inputs", "Outputs"]
    runs = {}
    for label, files in (("raw", [EX06_ARCH, EX06_PROB]),
                         ("native", [conv / "architecture.yaml", conv / "problem.yaml"])):
        out = tmp_path / label
        r = dse("map", *files, EX06_MAPPER, EX06_ERT, "--out", out, "--max-evals", "2000", "-q")
        assert r.exit_code == 0, r.output
        runs[label] = yaml.safe_load((out / "mapping.yaml").read_text())
    assert runs["raw"] == runs["native"]
    assert violations(tmp_path / "native" / "mapping.yaml", node_constraints(EX06_ARCH)) == []


# ------------------------------------------------------------------ typos and unmodelled keys


def _edited(tmp_path: Path, old: str, new: str, text: str = INLINE_V04) -> Path:
    assert old in text
    p = tmp_path / "edited.yaml"
    p.write_text(text.replace(old, new, 1))
    return p


def _refused(r: Result, *needles: str) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.output, r.output
    return r.output


@pytest.mark.parametrize("old,new,needles", [
    ("temporal: {factors: M>=2", "temporal: {factorss: M>=2",
     ["edited.yaml:20", "factorss", "did you mean 'factors'"]),
    ("      spatial: {permutation", "      spacial: {permutation",
     ["edited.yaml:25", "spacial", "did you mean 'spatial'"]),
    ("dataspace: {keep:", "dataspace: {kept:", ["kept", "did you mean 'keep'"]),
    ("{depth: 2048, width: 64", "{depth: 2048, read_bandwith: 4, width: 64",
     ["edited.yaml:17", "read_bandwith", "did you mean 'read_bandwidth'"]),
    ("    class: smartbuffer_SRAM", "    clas: smartbuffer_SRAM", ["clas", "did you mean 'class'"]),
    ("  energy_model: table-45nm", "  energy_model: table-45", ["energy_model",
                                                               "did you mean 'table-45nm'"]),
    ("temporal: {factors: M>=2", "temporal: {no_reuse: [Inputs], factors: M>=2",
     ["no_reuse", "not modelled yet"]),
    ("{depth: 2048, width: 64", "{depth: 2048, tile_partition_supported: true, width: 64",
     ["edited.yaml:17", "tile_partition_supported", "not modelled yet"]),
    ("      dataspace: {keep:", "      max_overbooked_proportion: {proportion: 0.1}\n"
     "      dataspace: {keep:", ["max_overbooked_proportion", "not modelled yet"]),
    ("    spatial: {meshX: 4, meshY: 4}\n", "    spatial: {meshX: 4, meshY: 4}\n"
     "    networks: [{name: noc, class: XY_NoC}]\n", ["networks", "not modelled yet"]),
    ("      spatial: {permutation: [C, M, N, P, Q, R, S], split: 1,", "      spatial: {split: 1,",
     ["split", "needs a `permutation`"]),
    ("    class: regfile\n", "    class: regfile\n    spatial: {meshX: 2}\n",
     ["edited.yaml:29", "own `spatial:` fan-out", "!Container"]),
    ("    attributes: {depth: 64, width: 8, datawidth: 8}\n",
     "    attributes: {depth: 64, width: 8, datawidth: 8, meshX: 2}\n",
     ["edited.yaml:29", "meshX: 2", "containers give it 4"]),
    ("      temporal: {factors: [R=3",
     "      utilization: {min: 1.5}\n      temporal: {factors: [R=3",
     ["edited.yaml:31", "(RF).constraints.utilization.min", "between 0 and 1"]),
])
def test_misspelt_or_unmodelled_keys_are_refused(tmp_path: Path, inline_arch, old: str,
                                                 new: str, needles: list[str]) -> None:
    _, prob = inline_arch
    arch = _edited(tmp_path, old, new)
    _refused(dse("map", arch, prob, "--out", tmp_path / "o", "--max-evals", "50", "-q"),
             *needles)


def test_constraint_file_typo_is_refused(tmp_path: Path, inline_arch) -> None:
    """A misspelt key in a constraints file target (`factorss`) used to drop the constraint."""
    arch, prob = inline_arch
    cons = tmp_path / "cons.yaml"
    cons.write_text("mapspace_constraints:\n  targets:\n"
                    "  - {target: GLB, type: temporal, factorss: C=1}\n")
    _refused(dse("map", arch, prob, cons, "--out", tmp_path / "o", "--max-evals", "50", "-q"),
             "cons.yaml:3", "factorss", "did you mean 'factors'")


def test_mapper_section_typo_and_unmodelled_are_refused(tmp_path: Path, inline_arch) -> None:
    arch, prob = inline_arch
    for text, needles in (("mapper: {optimisation_metrics: [edp]}\n",
                           ["optimisation_metrics", "did you mean 'optimization_metrics'"]),
                          ("mapper: {algorithm: random_prunned}\n",
                           ["random_prunned", "did you mean 'random_pruned'"]),
                          ("mapper: {max_temporal_loops_in_a_mapping: 9}\n",
                           ["max_temporal_loops_in_a_mapping", "not modelled yet"])):
        m = tmp_path / "mapper.yaml"
        m.write_text(text)
        _refused(dse("map", arch, prob, m, "--out", tmp_path / "o", "--max-evals", "50", "-q"),
                 "mapper.yaml:1", *needles)


def test_v03_mapspace_section_is_honoured(tmp_path: Path, inline_arch) -> None:
    """v0.3's `mapspace:` section holds mapspace constraints too (it used to be skipped)."""
    arch, prob = inline_arch
    cons = tmp_path / "cons.yaml"
    cons.write_text("mapspace:\n  targets:\n  - {target: GLB, type: temporal, factors: C=4}\n")
    out = tmp_path / "map"
    assert dse("map", arch, prob, cons, "--out", out, "--max-evals", "2000", "-q").exit_code == 0
    glb = next(e for e in yaml.safe_load((out / "mapping.yaml").read_text())["mapping"]
               if e["level"] == "GLB")
    assert dict(_loops(glb["temporal"])).get("C") == 4
    cons.write_text("mapspace:\n  template: ruby\n  targets: []\n")
    _refused(dse("map", arch, prob, cons, "--out", out, "--max-evals", "50", "-q"),
             "cons.yaml:2", "template", "not modelled yet")


SPARSE_CASES = {
    "top": ("sparse_optimizations:\n  targets:\n  - {name: GLB, representation_format: {}}\n",
            "sparse.yaml:1", "'sparse_optimizations'"),
    "densities": ("problem:\n  shape: cnn-layer\n  instance: {C: 8, M: 16, R: 3, S: 3, N: 1, "
                  "P: 8, Q: 8,\n    densities: {Weights: 0.5}}\n",
                  "sparse.yaml:4", "'densities'"),
}


@pytest.mark.parametrize("case", sorted(SPARSE_CASES))
def test_sparse_inputs_are_searched(tmp_path: Path, inline_arch, case: str) -> None:
    """dse map searches sparse designs (docs/sparse.md): the summary has the sparse totals."""
    arch, prob = inline_arch
    text, _, _ = SPARSE_CASES[case]
    sparse = tmp_path / "sparse.yaml"
    sparse.write_text(text)
    files = [arch, sparse] if case == "densities" else [arch, prob, sparse]
    r = dse("map", *files, "--out", tmp_path / "o", "--max-evals", "50", "-q")
    assert r.exit_code == 0, r.output
    assert "actual_computes" in json.loads((tmp_path / "o" / "summary.json").read_text())


def test_sparse_optimizations_on_a_node_is_refused(tmp_path: Path, inline_arch) -> None:
    _, prob = inline_arch
    arch = _edited(tmp_path, "    attributes: {depth: 64, width: 8, datawidth: 8}\n",
                   "    attributes: {depth: 64, width: 8, datawidth: 8}\n"
                   "    sparse_optimizations: {action_optimization: []}\n")
    _refused(dse("map", arch, prob, "--out", tmp_path / "o", "--max-evals", "50", "-q"),
             "edited.yaml:30", "sparse_optimizations", "not modelled yet")


def test_empty_densities_of_timeloop_dumps_are_dense(tmp_path: Path) -> None:
    """Timeloop's dumped inputs say `densities: {}`: that is dense, and loads."""
    spec = (TIMELOOP_REFS / "ispass_06_mapper_eyeriss" / "inputs" / "parsed-processed-input.yaml")
    assert "densities: {}" in spec.read_text()
    r = dse("map", spec, EX06_ERT, "--out", tmp_path / "o", "--max-evals", "200", "-q")
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------ energy_model, cluster_size


def test_energy_model_in_a_v04_architecture(tmp_path: Path, inline_arch) -> None:
    """The inline architecture has no energies: `energy_model:` fills them (source says so);
    without it the same file is refused for the missing energies."""
    arch, prob = inline_arch
    out = tmp_path / "map"
    assert dse("map", arch, prob, "--out", out, "--max-evals", "500", "-q").exit_code == 0
    sources = (out / "summary.json").read_text()
    assert "table-45nm" in sources
    bare = _edited(tmp_path, "  energy_model: table-45nm\n", "")
    r = dse("map", bare, prob, "--out", tmp_path / "o2", "--max-evals", "50", "-q")
    _refused(r, "no energy per")


CLUSTER_ARCH = """\
architecture:
  version: 0.3
  subtree:
    - name: system
      local:
        - name: DRAM
          class: DRAM
          attributes: {width: 8, datawidth: 8, energy: {read: 0, write: 0, update: 0}}
      subtree:
        - name: PE[0..3]
          local:
            - name: Buf
              class: regfile
              attributes: {depth: 64, width: 8, datawidth: 8, meshX: 4, CLUSTER
                           energy: {read: 1, write: 10, update: 100}}
            - name: mac
              class: intmac
              attributes: {datawidth: 8, meshX: 4, energy: {compute: 0}}
problem:
  shape:
    name: mv
    dimensions: [M, K]
    data_spaces:
      - {name: W, projection: [[[M]], [[K]]]}
      - {name: I, projection: [[[K]]]}
      - {name: O, projection: [[[M]]], read_write: true}
  instance: {M: BOUND, K: 2}
mapping:
  - {target: DRAM, type: temporal, factors: M1 K1, permutation: MK}
  - {target: DRAM, type: spatial, factors: MBOUND K1, permutation: MK}
  - {target: Buf, type: temporal, factors: M1 K2, permutation: KM}
"""


@pytest.mark.parametrize("bound,cluster,clusters_charged", [
    (4, 1, 4),  # every instance on its own
    (4, 2, 2),  # 4 instances in clusters of 2: one access energy per cluster
    (4, 4, 1),
    (2, 2, 2),  # 2 of 4 used: Timeloop assumes them spread over the 2 clusters
    (2, 4, 1),
])
def test_cluster_size_charges_energy_per_cluster(tmp_path: Path, bound: int, cluster: int,
                                                 clusters_charged: int) -> None:
    """Hand derivation. Each used Buf instance computes K=2 MACs of its own M: W tile 2 words
    (2 fills, 2 reads), I tile 2 words (2 fills, 2 reads), O 1 word (2 updates; the first read
    elided, so 1 read). With 1 word per row and read/write/update = 1/10/100 pJ, one access
    set costs W 2+20 = 22, I 22, O 1+200 = 201, 245 pJ in all. Timeloop (buffer.cpp,
    ComputeBufferEnergy) charges it once per utilized cluster, utilized clusters =
    min(utilized instances, instances / cluster_size)."""
    text = (CLUSTER_ARCH.replace("CLUSTER", f"cluster_size: {cluster},")
            .replace("BOUND", str(bound)))
    f = tmp_path / "all.yaml"
    f.write_text(text)
    out = tmp_path / "out"
    r = dse("model", f, "--out", out)
    assert r.exit_code == 0, r.output
    rows = {(row["level"], row["tensor"]): row
            for row in _csv(out / "levels.csv") if row["level"] == "Buf"}
    assert int(rows[("Buf", "W")]["utilized_instances"]) == bound
    energy = {t: float(rows[("Buf", t)]["energy_pJ"]) for t in ("W", "I", "O")}
    assert energy == {"W": 22.0 * clusters_charged, "I": 22.0 * clusters_charged,
                      "O": 201.0 * clusters_charged}


def test_mapper_and_model_agree_with_clusters(tmp_path: Path) -> None:
    """The mapper's batch model charges per cluster too: the energy `dse map` reports equals
    `dse model` of the mapping it wrote."""
    text = (CLUSTER_ARCH.replace("CLUSTER", "cluster_size: 2,").replace("BOUND", "4"))
    text = text[:text.index("mapping:")]
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    r = dse("map", f, "--out", tmp_path / "m", "--max-evals", "500", "-q")
    assert r.exit_code == 0, r.output
    r = dse("model", f, tmp_path / "m" / "mapping.yaml", "--out", tmp_path / "e")
    assert r.exit_code == 0, r.output
    import json

    mapped = json.loads((tmp_path / "m" / "summary.json").read_text())["energy_pJ"]
    modelled = json.loads((tmp_path / "e" / "summary.json").read_text())["energy_pJ"]
    assert mapped == pytest.approx(modelled, rel=1e-12)
    assert "cluster_size: 2" in yaml.safe_dump(yaml.safe_load(
        (_convert(tmp_path, f) / "architecture.yaml").read_text()))


def _convert(tmp_path: Path, f: Path) -> Path:
    out = tmp_path / "conv"
    assert dse("convert", f, "--out", out).exit_code == 0
    return out


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open() as fh:
        return list(csv.DictReader(fh))


def _cluster_spec(tmp_path: Path, old: str = "", new: str = "") -> Path:
    text = CLUSTER_ARCH.replace("CLUSTER", "cluster_size: 2,").replace("BOUND", "4")
    assert old in text
    f = tmp_path / "spec.yaml"
    f.write_text(text.replace(old, new, 1))
    return f


@pytest.mark.parametrize("old,new,needles", [
    ("energy: {read: 1, write: 10, update: 100}", "energy: {read: 1, write: 10, update: 100, "
     "leek: 1}", ["spec.yaml:15", "leek", "did you mean 'leak'"]),
    ("cluster_size: 2,", "cluster_size: 3,", ["cluster_size 3", "does not divide"]),
    ("            - name: Buf\n", "            - name: Buf\n              enabled: false\n",
     ["enabled", "not modelled yet"]),
    ("permutation: KM}", "permutation: KM, no_multicast_no_reduction: [W]}",
     ["no_multicast_no_reduction", "not modelled yet"]),
    ("{depth: 64,", "{depht: 64, depth: 64,", ["depht", "did you mean 'depth'"]),
    ("      - {name: W, projection", "      - {name: W, projektion: [], projection",
     ["projektion", "did you mean 'projection'"]),
])
def test_v03_and_mapping_typos_are_refused(tmp_path: Path, old: str, new: str,
                                           needles: list[str]) -> None:
    _refused(dse("model", _cluster_spec(tmp_path, old, new), "--out", tmp_path / "o"), *needles)


def test_ert_typo_is_refused(tmp_path: Path) -> None:
    ert = tmp_path / "ert.yaml"
    ert.write_text(EX06_ERT.read_text().replace("energy:", "energyy:", 1))
    _refused(dse("map", EX06_ARCH, EX06_PROB, ert, "--out", tmp_path / "o", "--max-evals", "50",
                 "-q"), "energyy", "did you mean 'energy'")


def test_native_problem_densities_are_searched_by_map(tmp_path: Path, inline_arch) -> None:
    """A native problem's `densities:` is read and the search is sparse: the summary counts
    the sparse computes of the best mapping (no sparse optimizations: all MACs still run)."""
    arch, prob = inline_arch
    prob.write_text(INLINE_PROBLEM.replace("  N: 1\n", "  N: 1\n  densities: {Weights: 0.5}\n",
                                           1))
    out = tmp_path / "o"
    r = dse("map", arch, prob, "--out", out, "--max-evals", "50", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["actual_computes"] == summary["macs"]
    levels = (out / "levels.csv").read_text().splitlines()[0].split(",")
    assert "algorithmic_reads_per_instance" in levels  # the sparse step ran


def test_native_architecture_sparse_optimizations_not_modelled_yet(tmp_path: Path) -> None:
    arch = Path(__file__).resolve().parents[1] / "arch_specs" / "eyeriss_like.yaml"
    text = arch.read_text()
    assert "  levels:\n" in text
    edited = tmp_path / "arch.yaml"
    edited.write_text(text.replace("  levels:\n", "  sparse_optimizations: {targets: []}\n"
                                   "  levels:\n", 1))
    _refused(dse("map", edited, RESNET_LAYER, "--out", tmp_path / "o", "--max-evals", "50",
                 "-q"), "arch.yaml:", "sparse_optimizations", "not modelled yet")


def test_estimator_attributes_are_accepted(tmp_path: Path, inline_arch) -> None:
    """Accelergy reads attributes freely: ones that are not a near-miss of a modelled attribute
    (`DAC_datawidth` is 4 characters longer than `datawidth`) load, and so do the sparse-capable
    hardware's metadata attributes when no sparse optimization uses them."""
    _, prob = inline_arch
    arch = _edited(tmp_path, "{depth: 2048, width: 64", "{depth: 2048, DAC_datawidth: 4, "
                   "n_banks: 4, PSUM_DATAWIDTH: 16, metadata_storage_width: 8, width: 64")
    r = dse("map", arch, prob, "--out", tmp_path / "o", "--max-evals", "200", "-q")
    assert r.exit_code == 0, r.output
