"""Hostile or absurd input is refused quickly with one located paragraph and exit 2: YAML
loader abuse (control characters, deep nesting, alias bombs), expression-evaluator abuse,
numbers that are NaN/infinite/beyond 64-bit, absurd dimensions, bad budgets (CLI and sweep),
malformed ONNX graphs; and an unexpected exception is exit 3, not a traceback."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dse.cli import main
from dse.errors import SpecError, short_repr
from dse.spec.expr import ExpressionError, evaluate_expression, to_number
from dse.spec.yamlload import MAX_DEPTH, Node, load_yaml_text

ARCH = """\
architecture:
  name: mini
  levels:
    - name: DRAM
      class: DRAM
      width: 64
      datawidth: 8
      energy: {read: 100, write: 100, update: 100, leak: 0}
    - name: buf
      depth: DEPTH
      width: 64
      datawidth: 8
      energy: {read: 1, write: 1, update: 1, leak: LEAK}
  compute:
    name: mac
    energy: {compute: 1}
"""
LAYER = """\
problem:
  type: conv2d
  C: 4
  M: MDIM
  P: 4
  Q: 4
  R: 3
  S: 3
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def arch(tmp_path: Path, depth: str = "1024", leak: str = "0") -> str:
    return write(tmp_path, "mini.yaml", ARCH.replace("DEPTH", depth).replace("LEAK", leak))


def layer(tmp_path: Path, m: str = "4") -> str:
    return write(tmp_path, "layer.yaml", LAYER.replace("MDIM", m))


def invoke(args: list[str], limit_s: float = 20.0):
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    took = time.perf_counter() - t0
    assert took < limit_s, f"{args} took {took:.1f} s"
    return result


def assert_refused(result, filename: str | None, *needles: str, line: bool = True) -> str:
    """Exit 2, one paragraph starting with 'error:', file(:line) and the needles in it."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    msg = result.output
    assert "Traceback" not in msg
    assert msg.startswith("error: "), msg
    assert msg.strip().count("\n") == 0, f"not one paragraph: {msg!r}"
    assert len(msg) < 600, f"message too long ({len(msg)} chars)"
    if filename:
        pattern = re.escape(filename) + (r":\d+" if line else "")
        assert re.search(pattern, msg), f"no {filename}{':line' if line else ''} in {msg!r}"
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------ YAML loader


def test_control_character_is_refused_with_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path, "a.yaml", "architecture:\n  name: mi\x00ni\n")
    msg = assert_refused(invoke(["arch", "show", f]), "a.yaml", "U+0000", "column 11")
    assert "a.yaml:2" in msg


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 1000, 100_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    f = write(tmp_path, "a.yaml", "architecture:\n  name: " + "[" * depth + "]" * depth + "\n")
    assert_refused(invoke(["arch", "show", f], limit_s=5), "a.yaml", "nesting")


def test_self_referencing_anchor_is_refused() -> None:
    with pytest.raises(SpecError, match="nesting is deeper"):
        load_yaml_text("a: &x [1, *x]\n", "r.yaml")


def test_alias_bomb_is_refused_quickly_without_echoing_the_value(tmp_path: Path) -> None:
    rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        rows.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    rows.append("network: {name: n, layers: *a9}")
    f = write(tmp_path, "net.yaml", "\n".join(rows) + "\n")
    msg = assert_refused(invoke(["workload", "show", f], limit_s=5), "net.yaml", "aliases")
    assert "lol" not in msg


def test_merge_keys_with_overrides_are_legal_yaml() -> None:
    data = load_yaml_text(
        "base: &b {depth: 64, width: 8, datawidth: 8}\n"
        "buf:\n  <<: *b\n  depth: 128\n"
        "two:\n  <<: [*b, {depth: 1, block: 4}]\n  width: 16\n", "m.yaml")
    assert dict(data["buf"]) == {"depth": 128, "width": 8, "datawidth": 8}
    assert data["buf"].line_of("depth") == 4  # the overriding key's own line
    assert isinstance(data["buf"], Node) and data["buf"].line == 3
    # earlier merged mappings win over later ones; explicit keys win over both
    assert dict(data["two"]) == {"depth": 64, "width": 16, "datawidth": 8, "block": 4}


def test_explicit_duplicate_keys_are_still_refused() -> None:
    with pytest.raises(SpecError, match="appears twice") as info:
        load_yaml_text("a:\n  <<: {x: 1}\n  y: 2\n  y: 3\n", "d.yaml")
    assert info.value.line == 4


def test_values_and_tags_load_as_before() -> None:
    data = load_yaml_text("a: !Component {name: x}\nb: !Tagged [1, 2]\nc: [1.5, yes, null, '7']\n",
                          "t.yaml")
    assert data["a"]["_tag"] == "!Component" and data["a"]["name"] == "x"
    assert data["b"] == [1, 2] and data["b"].tag == "!Tagged" and data["b"].line == 2
    assert data["c"] == [1.5, True, None, "7"]


def test_large_spec_loads_with_the_c_parser(tmp_path: Path) -> None:
    """A 1.8 MB network file (300,000 list lines under an unused key) loads whole, with its
    lines, through libyaml's parser (the pure-Python loader took ~7 s of CPU for it, the C
    one ~1 s; a speed is measured by a benchmark, not asserted here)."""
    import yaml

    from dse.spec import yamlload

    assert yaml.__with_libyaml__ and yamlload._Loader is yaml.CSafeLoader
    text = ("network:\n  name: n\n  input: {C: 3, H: 8}\n  layers:\n"
            "    - {name: c, type: conv2d, C: 3, K: 8, H: 8, R: 3, pad: 1, P: 8}\n"
            "fuzz_padding:\n" + "  - 1\n" * 300_000)
    assert len(text) > 1_800_000
    data = load_yaml_text(text, "huge.yaml")
    assert len(data["fuzz_padding"]) == 300_000
    assert data.line_of("fuzz_padding") == 6


def test_short_repr_caps_values() -> None:
    assert len(short_repr("x" * 10_000)) == 80
    assert short_repr(10**5000).startswith("<an integer of about 5001 digits")


# ------------------------------------------------------------------ expressions and numbers


@pytest.mark.parametrize("text", ["ceil(1e400)", "-'x'", "'ab'*(10**18)",
                                  "(((7**64)**64)**64)**64", "2**64", "(10**60)**7",
                                  "int(1e300)", "9223372036854775807+1", "not 'x'",
                                  "float('inf')", "log(0)", "1/0", "1e400", "2.0**10000",
                                  "(-8)**0.5"])
def test_evaluator_refuses_abuse_quickly(text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ExpressionError):
        to_number(text)
    assert time.perf_counter() - t0 < 0.5


def test_evaluator_keeps_ordinary_arithmetic() -> None:
    assert to_number("16*1024") == 16384
    assert to_number("log2(1024)") == 10
    assert to_number("2**62") == 2**62
    assert to_number("ceil(7/2) + max(1, 2)") == 6
    assert evaluate_expression("1 if 3 > 2 else 0") == 1
    assert to_number("0.5**100") > 0


def test_expression_message_is_truncated() -> None:
    with pytest.raises(ExpressionError) as info:
        to_number("x" * 500)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("depth, needle", [
    ('"ceil(1e400)"', "not a finite number"),
    ('"-\'x\'"', "needs numbers"),
    ('"\'ab\'*(10**18)"', "needs numbers"),
    ('"(((7**64)**64)**64)**64"', "64-bit"),
    ('"2**64"', "64-bit"),
    ("18446744073709551616", "64-bit"),
    ("1.0e308", "64-bit"),
    (".inf", "finite"),
])
def test_bad_depth_is_refused_where_read(tmp_path: Path, depth: str, needle: str) -> None:
    a = arch(tmp_path, depth=depth)
    msg = assert_refused(invoke(["arch", "show", a], limit_s=5), "mini.yaml", needle)
    assert "levels[1](buf).depth" in msg and "mini.yaml:10" in msg


@pytest.mark.parametrize("leak", [".nan", ".inf", '"(10**60)**7"', "-.inf"])
def test_non_finite_energy_is_refused(tmp_path: Path, leak: str) -> None:
    a = arch(tmp_path, leak=leak)
    msg = assert_refused(invoke(["arch", "show", a], limit_s=5), "mini.yaml")
    assert "energy.leak" in msg


def test_mesh_beyond_int64_is_refused(tmp_path: Path) -> None:
    text = ARCH.replace("DEPTH", "1024").replace("LEAK", "0").replace(
        "    - name: buf\n", "    - name: buf\n      meshX: 1.0e308\n")
    a = write(tmp_path, "mini.yaml", text)
    assert_refused(invoke(["map", a, layer(tmp_path), "--max-evals", "50", "-q", "--out",
                           str(tmp_path / "o")], limit_s=10), "mini.yaml", "meshX", "64-bit")


@pytest.mark.parametrize("m, needle", [("2**64", "64-bit"),
                                       ("4611686018427387904", "larger than the mapper"),
                                       ("18446744073709551616", "64-bit")])
def test_absurd_dimension_is_refused_not_a_hang(tmp_path: Path, m: str, needle: str) -> None:
    result = invoke(["map", arch(tmp_path), layer(tmp_path, m), "--max-evals", "50", "-q",
                     "--out", str(tmp_path / "o")], limit_s=10)
    assert_refused(result, "layer.yaml", needle, line=False)


def test_iteration_space_beyond_the_mapper_limit_is_refused(tmp_path: Path) -> None:
    """2**45 x 4*4*4*3*3 points: each bound is fine, their product would overflow the mapper's
    int64 access counts, so it is refused up front."""
    result = invoke(["map", arch(tmp_path), layer(tmp_path, str(2**45)), "--max-evals", "50",
                     "-q", "--out", str(tmp_path / "o")], limit_s=10)
    assert_refused(result, "layer.yaml", "iteration space", "2**50", line=False)


def test_large_prime_dimension_does_not_hang(tmp_path: Path) -> None:
    """Divisors are found in O(sqrt n): a prime near 2**40 maps in seconds."""
    result = invoke(["map", arch(tmp_path), layer(tmp_path, "1099511627689"), "--max-evals",
                     "50", "-q", "--out", str(tmp_path / "o")], limit_s=20)
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_missing_compute_energy_in_map_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "mini.yaml", ARCH.replace("DEPTH", "1024").replace("LEAK", "0")
              .replace("    energy: {compute: 1}\n", ""))
    assert_refused(invoke(["map", a, layer(tmp_path), "--max-evals", "50", "-q", "--out",
                           str(tmp_path / "o")]), "mini.yaml", "compute", line=False)


# ------------------------------------------------------------------ budgets


@pytest.mark.parametrize("args, needle", [
    (["--max-evals", "-100"], "--max-evals"),
    (["--max-evals", "0"], "--max-evals"),
    (["--time-limit", "0s"], "--time-limit"),
    (["--time-limit", "-1s"], "--time-limit"),
    (["--seed", "-1"], "--seed"),
    (["--jobs", "0"], "--jobs"),
    (["--max-evals", "99999999999999999999999"], "--max-evals"),
])
def test_map_budgets_are_checked(tmp_path: Path, args: list[str], needle: str) -> None:
    result = invoke(["map", arch(tmp_path), layer(tmp_path), "-q", "--out",
                     str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--max-evals", "0"], ["--jobs", "0"]])
def test_run_budgets_are_checked(tmp_path: Path, args: list[str]) -> None:
    result = invoke(["run", "--arch", arch(tmp_path), "--workload", layer(tmp_path), "--out",
                     str(tmp_path / "o"), "--store", str(tmp_path / "s.sqlite"), "-q", *args])
    assert result.exit_code == 2, result.output
    assert args[0] in result.output


@pytest.mark.parametrize("mapper, needle", [
    ("{max_evals: 0}", "max_evals"),
    ("{max_evals: -5}", "max_evals"),
    ("{max_evals: abc}", "max_evals"),
    ("{max_evals: 1e400}", "max_evals"),
    ("{max_evals: null}", "max_evals"),
    ("{max_evals: 2.5}", "whole number"),
    ("{seed: null}", "seed"),
    ("{seed: -1}", "seed"),
    ("{search: randmo}", "did you mean 'random'"),
])
def test_sweep_mapper_section_is_checked(tmp_path: Path, mapper: str, needle: str) -> None:
    arch(tmp_path)
    layer(tmp_path)
    s = write(tmp_path, "sweep.yaml", "sweep:\n  name: s\n  architectures: [mini.yaml]\n"
              f"  workloads: [layer.yaml]\n  mapper: {mapper}\n")
    result = invoke(["sweep", s, "--out", str(tmp_path / "o"), "--store",
                     str(tmp_path / "s.sqlite"), "-q"])
    msg = assert_refused(result, "sweep.yaml", needle)
    assert "sweep.yaml:5" in msg


@pytest.mark.parametrize("version", ["-0.5", "2", "null", "[1]"])
def test_sweep_version_is_checked(tmp_path: Path, version: str) -> None:
    s = write(tmp_path, "sweep.yaml", f"sweep:\n  version: {version}\n  name: s\n"
              "  architectures: [mini.yaml]\n  workloads: [layer.yaml]\n")
    msg = assert_refused(invoke(["sweep", s, "--out", str(tmp_path / "o"), "--store",
                                 str(tmp_path / "s.sqlite"), "-q"]), "sweep.yaml", "version")
    assert "sweep.yaml:2" in msg


@pytest.mark.parametrize("size", ["abc", "-5", "1e400", "2.5"])
def test_timeloop_mapper_search_size_is_checked(tmp_path: Path, size: str) -> None:
    m = write(tmp_path, "mapper.yaml", f"mapper:\n  search-size: {size}\n")
    result = invoke(["map", arch(tmp_path), layer(tmp_path), m, "-q", "--out",
                     str(tmp_path / "o")])
    assert_refused(result, "mapper.yaml", "search_size")


@pytest.mark.parametrize("entry", [".", "no_such.yaml", "[]"])
def test_sweep_architecture_must_be_a_file(tmp_path: Path, entry: str) -> None:
    layer(tmp_path)
    s = write(tmp_path, "sweep.yaml", f"sweep:\n  name: s\n  architectures: ['{entry}']\n"
              "  workloads: [layer.yaml]\n")
    assert_refused(invoke(["sweep", s, "--out", str(tmp_path / "o"), "--store",
                           str(tmp_path / "s.sqlite"), "-q"]), "sweep.yaml", "architecture")


# ------------------------------------------------------------------ Timeloop-side numbers

TL_ARCH = """\
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
    attributes: {technology: 45nm}
  - !Component
    name: MainMemory
    class: DRAM
    attributes: {width: 64, datawidth: 8}
  - !Container
    name: pe
    spatial: {meshX: MESH}
  - !Component
    name: Buffer
    class: SRAM
    attributes: {depth: 64, width: 8, datawidth: 8}
  - !Component
    name: MAC
    class: intmac
    attributes: {}
"""
TL_PROBLEM = """\
problem:
  version: 0.4
  shape:
    name: conv1d
    dimensions: [R, P]
    data_spaces:
    - {name: Weights, projection: [[[R]]]}
    - {name: Inputs, projection: [[[R], [P]]]}
    - {name: Outputs, projection: [[[P]]], read_write: true}
  instance: {R: 3, P: 16}
"""
TL_MAP = """\
mapping:
- {target: MainMemory, type: temporal, factors: R=1 P=4, permutation: RP}
- {target: Buffer, type: temporal, factors: R=3 P=4, permutation: RP}
"""
ERT = """\
ERT:
  tables:
    - name: system.MainMemory
      actions:
        - {name: read, energy: 64}
        - {name: write, energy: 64}
    - name: system.pe.Buffer
      actions:
        - {name: read, energy: 1}
        - {name: write, energy: 1}
    - name: system.pe.MAC
      actions:
        - ACTION
"""


def tl_model(tmp_path: Path, mesh: str = "1", action: str = "{name: compute, energy: 0.5}"):
    files = [write(tmp_path, "arch.yaml", TL_ARCH.replace("MESH", mesh)),
             write(tmp_path, "prob.yaml", TL_PROBLEM), write(tmp_path, "map.yaml", TL_MAP),
             write(tmp_path, "ert.yaml", ERT.replace("ACTION", action))]
    return invoke(["model", *files, "-q", "--out", str(tmp_path / "o")])


def test_timeloop_case_runs(tmp_path: Path) -> None:
    result = tl_model(tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("action, needle", [("null", "expected a mapping"),
                                            ("{name: compute, energy: '1;2'}", "1;2"),
                                            ("{name: compute, energy: .nan}", "finite"),
                                            ("{name: compute}", "expected a number")])
def test_bad_ert_action_is_refused(tmp_path: Path, action: str, needle: str) -> None:
    msg = assert_refused(tl_model(tmp_path, action=action), "ert.yaml", needle)
    assert "ERT.tables[2].actions[0]" in msg


@pytest.mark.parametrize("mesh", ["1.0e308", "0", "abc", "2**64"])
def test_bad_timeloop_mesh_is_refused(tmp_path: Path, mesh: str) -> None:
    assert_refused(tl_model(tmp_path, mesh=mesh), "arch.yaml", "meshX")


# ------------------------------------------------------------------ ONNX

def _onnx_model(tmp_path: Path, *, group=1, relu_input: str = "c", name: str = "/stem/relu/Relu"):
    onnx_mod = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="/dw/Conv", kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1], group=group)
    relu = helper.make_node("Relu", [relu_input], ["y"], name=name)
    graph = helper.make_graph(
        [conv, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [numpy_helper.from_array(np.zeros([8, 1, 3, 3], dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    path = tmp_path / "model.onnx"
    onnx_mod.save(model, str(path))
    return path


def test_onnx_valid_graph_imports(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path, group=8)
    result = invoke(["import", str(path), "-o", str(tmp_path / "net.yaml")])
    assert result.exit_code == 0, result.output


def test_onnx_string_attribute_where_int_expected(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path, group="eight")
    assert_refused(invoke(["import", str(path), "-o", str(tmp_path / "net.yaml")]),
                   "model.onnx", "/dw/Conv", "'group'", "STRING", line=False)


def test_onnx_zero_group_is_refused(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path, group=0)
    assert_refused(invoke(["import", str(path), "-o", str(tmp_path / "net.yaml")]),
                   "model.onnx", "'group'", ">= 1", line=False)


def test_onnx_missing_input_tensor(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path, relu_input="no_such_tensor")
    assert_refused(invoke(["import", str(path), "-o", str(tmp_path / "net.yaml")]),
                   "model.onnx", "/stem/relu/Relu", "no_such_tensor", line=False)


def test_onnx_node_name_not_utf8(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path)
    raw = path.read_bytes()
    assert raw.count(b"/stem/relu/Relu") == 1
    path.write_bytes(raw.replace(b"/stem/relu/Relu", b"/stem/rel\xff/Relu"))
    assert_refused(invoke(["import", str(path), "-o", str(tmp_path / "net.yaml")]),
                   "model.onnx", "not UTF-8", "node[1]", line=False)


# ------------------------------------------------------------------ internal errors


def test_unexpected_exception_is_exit_3_not_a_traceback(tmp_path: Path, monkeypatch) -> None:
    import dse.spec.build

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug " + "x" * 1000)

    monkeypatch.setattr(dse.spec.build, "load_spec", broken)
    monkeypatch.delenv("DSE_DEBUG", raising=False)
    result = invoke(["model", arch(tmp_path), layer(tmp_path)])
    assert result.exit_code == 3, result.output
    assert result.output.startswith("internal error: RuntimeError: simulated bug")
    assert "Traceback" not in result.output and "report" in result.output
    assert len(result.output) < 600
