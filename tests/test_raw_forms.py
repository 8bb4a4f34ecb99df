"""Small checks of the forms Timeloop users write: YAML merge keys, Jinja2 templates, v0.4
variables, ERT names. (Whole raw-file cases against reference numbers are in
test_timeloop_raw.py, test_timeloop_v04_designs.py, test_timeloop_legacy*.py.)"""

from __future__ import annotations

import pytest

from dse.errors import SpecError
from dse.spec.build import load_spec
from dse.spec.timeloop import ert_component_name, evaluate_variables
from dse.spec.yamlload import load_documents, load_yaml_text


def test_merge_key_then_override_is_legal_yaml() -> None:
    text = ("a: &w {name: write, energy_scale: 2}\n"
            "b:\n  <<: *w\n  name: update\n"
            "c:\n  name: read\n  <<: [*w]\n")
    data = load_yaml_text(text, "m.yaml")
    assert data["b"] == {"name": "update", "energy_scale": 2}
    assert data["c"]["name"] == "read"  # a mapping's own key wins wherever it is written
    assert data["b"].line_of("name") == 4


def test_a_repeated_own_key_is_still_an_error() -> None:
    with pytest.raises(SpecError) as err:
        load_yaml_text("a: &w {x: 1}\nb:\n  <<: *w\n  x: 2\n  x: 3\n", "m.yaml")
    assert err.value.line == 5


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_template_includes_keep_their_own_file_and_line(tmp_path) -> None:
    write(tmp_path, "part.yaml", "# comment\nproblem:\n  shape: cnn-layer\n  instance: {C: 2, M: 2,"
          " R: 1, S: 1, N: 1, P: {{ p }}, Q: 1}\n")
    top = write(tmp_path, "top.yaml.jinja2", "# top\n{% set x = 1 %}\n"
                "problem: {{ include('part.yaml', 'problem') }}\n")
    doc = load_documents([top], jinja_data={"p": 3})
    node = doc.data["problem"]
    assert node.file.endswith("part.yaml") and node.line_of("instance") == 4
    assert doc.data.line_of("problem") == 3  # the template's own line numbering is kept
    assert node["instance"]["P"] == 3
    assert any(f.endswith("part.yaml") for f in doc.hashes)


@pytest.mark.parametrize("text, line, words", [
    ("a: 1\nb: {{ missing }}\n", 2, "missing"),
    ("a: 1\n\nb: {% if %}\n", 3, "Jinja2"),
    ("a: {{ ''.__class__.__mro__ }}\n", 1, "Jinja2"),  # the sandbox refuses internals
    ("a: {{ include('nope.yaml', 'x') }}\n", None, "not found"),
])
def test_template_errors_are_located(tmp_path, text, line, words) -> None:
    p = write(tmp_path, "t.yaml", text)
    with pytest.raises(SpecError) as err:
        load_documents([p])
    assert err.value.file == str(p)
    if line is not None:
        assert err.value.line == line
    assert words in str(err.value)


def test_variables_and_attribute_expressions(tmp_path) -> None:
    arch = write(tmp_path, "arch.yaml", """
variables: {version: 0.4, DW: 4 * 2, technology: "45nm", global_cycle_seconds: 1e-9}
architecture:
  version: 0.4
  nodes:
  - !Container {name: system}
  - !Component {name: DRAM, class: DRAM, attributes: {width: 64, datawidth: DW}}
  - !Component {name: buf, class: SRAM, attributes: {datawidth: DW, depth: 4, width: datawidth * 3}}
  - !Component {name: mac, class: intmac, attributes: {multiplier_width: DW}}
problem: {shape: cnn-layer, instance: {C: 1, M: 1, R: 1, S: 1, N: 1, P: 1, Q: 1}}
""")
    spec = load_spec([arch], need_mapping=False)
    buf = spec.arch.levels[1]
    assert (buf.datawidth, buf.width, buf.block_size) == (8, 24, 3)
    assert spec.arch.technology == "45nm" and spec.arch.clock_hz == pytest.approx(1e9)


def test_a_broken_variable_expression_is_located(tmp_path) -> None:
    p = write(tmp_path, "v.yaml", "variables:\n  A: 2\n  B: A +* 3\n")
    doc = load_documents([p])
    with pytest.raises(SpecError) as err:
        evaluate_variables(doc.data["variables"])
    assert err.value.line == 3


def test_ert_names_with_ranges() -> None:
    assert ert_component_name("System.ws.PE[0..15].PEWeightRegs[0..15]") == "PEWeightRegs"
    assert ert_component_name("System_top_level.mac[1..256]") == "mac"
    assert ert_component_name("system.DRAM") == "DRAM"


def test_cli_model_takes_template_data(tmp_path) -> None:
    from click.testing import CliRunner

    from dse.cli import main
    from tests.test_timeloop_raw import ISPASS, RAW_CASES, ert_of

    files, data = RAW_CASES["ispass_timeloop_accelergy_intmac"]
    args = [str(ISPASS / f) for f in files] + [str(ert_of("ispass_timeloop_accelergy_intmac"))]
    jd = [x for k, v in data.items() for x in ("--jinja-data", f"{k}={v}")]
    ok = CliRunner().invoke(main, ["model", *args, *jd, "-q", "--out", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    missing = CliRunner().invoke(main, ["model", *args, "-q"])
    assert missing.exit_code == 2 and "psum_datawidth" in missing.output
