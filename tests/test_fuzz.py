"""Fuzz: seeded, structured mutations of the bundled specs (arch_specs/, workloads/, mappings/,
sweeps/) and the vendored Timeloop cases' inputs, run through every subcommand in-process.

Each case must end with exit 0, 1 or 2 and no traceback (click's result.exception is None or
SystemExit; 3 = 'internal error' counts as a finding), within a time bound, and without
exhausting memory (the address space is capped while the cases run). The short run is part of
the default suite; `DSE_FUZZ_CASES=N pytest -m slow tests/test_fuzz.py` runs a long one.
"""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dse.cli import main

REPO = Path(__file__).resolve().parents[1]
TIMELOOP = REPO / "tests" / "data" / "timeloop"
SHORT_CASES = 100
LONG_CASES = int(os.environ.get("DSE_FUZZ_CASES", "1500"))
CASE_SECONDS = 60  # a case running longer than this is a hang (valid sweeps take ~25 s under load)
MEMORY_HEADROOM = 3 << 30  # bytes of address space a case may add before it is a blow-up
EVALS = "20"

TINY_NET = """\
network:
  name: tiny
  input: {C: 3, H: 8}
  layers:
    - {name: c1, type: conv2d, C: 3, K: 8, H: 8, R: 3, pad: 1, P: 8}
    - {name: c2, type: conv2d, C: 8, K: 4, H: 8, R: 1, P: 8}
"""
TINY_LAYER = """\
problem:
  type: conv2d
  C: 8
  M: 16
  P: 7
  Q: 7
  R: 3
  S: 3
"""

# Values that a reader must refuse or take: wrong types, non-finite, huge, negative, hostile.
BAD_VALUES = [
    ".nan", ".inf", "-.inf", "1e400", "1.0e308", "18446744073709551616", "-1", "0", "-0.5",
    "abc", "''", "null", "true", "[]", "{}", "{a: [1, {b: [2, [3]]}]}", "[1, 2, 3]",
    "'ceil(1e400)'", "'(((7**64)**64)**64)**64'", "\"'ab'*10**18\"", "'2**64'", "'-x'",
    "'1;2'", "99999999999", "4611686018427387904", "'" + "9" * 5000 + "'",
    "[" * 150 + "]" * 150, "'\\x00'", "!Component {name: x}", "*undefined_alias",
]
CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\ufffe", "\x85\x00"]
KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?P<sep>[ \t]*:[ \t]+)"
                       r"(?P<value>[^,{}\[\]\n#]*[^,{}\[\]\n#\s])")
KEY = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)[ \t]*:(?=[ \t\n])")


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case; a BaseException so no `except Exception` eats it."""


# ----------------------------------------------------------------------------- mutations


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word))
    choice = rng.randrange(4)
    if choice == 0 and len(word) > 1:
        return word[:i] + word[i + 1:]
    if choice == 1 and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if choice == 2:
        return word[:i] + rng.choice("aeiosx_") + word[i:]
    return word.upper() if word != word.upper() else word.lower() + "x"


def _line_span(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, (len(text) if end < 0 else end + 1)


def mutate(rng: random.Random, text: str, protect: str | None = None) -> tuple[str, str]:
    """One structured mutation of a YAML text: (new text, what was done). Lines containing
    `protect` (e.g. a sweep's small search budget) are left alone."""
    keep_to = _line_span(text, text.rfind(protect))[1] if protect and protect in text else 0

    def free(m: re.Match) -> bool:
        start, end = _line_span(text, m.start())
        return not (protect and protect in text[start:end])

    values = [m for m in KEY_VALUE.finditer(text) if free(m)]
    keys = [m for m in KEY.finditer(text) if free(m)]
    ops = ["value", "value", "value", "typo", "delete", "delete_block", "duplicate", "truncate",
           "control", "nest"]
    op = rng.choice(ops)
    if op in ("value", "nest") and values:
        m = rng.choice(values)
        new = rng.choice(BAD_VALUES) if op == "value" else "{x: [1, {y: [2, [3]]}], z: *a}"
        return (text[:m.start("value")] + new + text[m.end("value"):],
                f"{m.group('key')}: {m.group('value')[:40]!r} -> {new[:40]!r}")
    if op == "typo" and keys:
        m = rng.choice(keys)
        new = _typo(rng, m.group("key"))
        return text[:m.start("key")] + new + text[m.end("key"):], f"key {m.group('key')} -> {new}"
    if op in ("delete", "duplicate", "delete_block") and keys:
        m = rng.choice(keys)
        start, end = _line_span(text, m.start())
        line = text[start:end]
        if op == "duplicate":
            return text[:end] + line + text[end:], f"duplicated line {line.strip()[:60]!r}"
        if op == "delete_block":
            indent = len(line) - len(line.lstrip())
            while end < len(text):
                nxt_end = _line_span(text, end)[1]
                nxt = text[end:nxt_end]
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                end = nxt_end
            if protect and protect in text[start:end]:
                end = _line_span(text, start)[1]
        return text[:start] + text[end:], f"{op} at {line.strip()[:60]!r}"
    if op == "truncate" and text:
        cut = rng.randrange(keep_to, len(text) + 1)
        return text[:cut], f"truncated at {cut} of {len(text)}"
    pos = rng.randrange(len(text) + 1)
    char = rng.choice(CONTROL)
    return text[:pos] + char + text[pos:], f"control {char!r} at {pos}"


# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    """A subcommand and its input files; `argv(paths, tmp)` builds the command line."""

    name: str
    files: dict[str, str]  # role -> seed text
    argv: Callable[[dict[str, Path], Path], list[str]]
    mutable: tuple[str, ...] = ()
    protect: str | None = None  # a text the mutations keep (a sweep's search budget)
    suffixes: dict[str, str] = field(default_factory=dict)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _timeloop_targets() -> list[Target]:
    out = []
    for case in sorted(p for p in TIMELOOP.iterdir() if (p / "case.yaml").exists()):
        meta = yaml.safe_load(_text(case / "case.yaml"))
        inputs = {f"in{i}": _text(case / "inputs" / f) for i, f in enumerate(meta["inputs"])}
        names = list(inputs)
        conv_shaped = re.search(r"CNN|dimensions: \[C, [MK], R, S", inputs["in0"])
        out += [
            Target(f"import:{case.name}", {"spec": inputs["in0"]},
                   lambda p, t: ["import", str(p["spec"]), "-o", str(t / "net.yaml")]),
        ] if conv_shaped else []
        out += [
            Target(f"model:{case.name}", inputs,
                   lambda p, t, n=names: ["model", *[str(p[k]) for k in n], "-q", "--out",
                                          str(t / "out")]),
            Target(f"map:{case.name}", inputs,
                   lambda p, t, n=names: ["map", *[str(p[k]) for k in n], "--max-evals", EVALS,
                                          "-q", "--out", str(t / "out")]),
            Target(f"convert:{case.name}", inputs,
                   lambda p, t, n=names: ["convert", *[str(p[k]) for k in n], "--out",
                                          str(t / "out")]),
        ]
    return out


def _sweep_text(path: Path, arch_dir: Path) -> str:
    text = _text(path).replace("arch_specs/", f"{arch_dir}/")
    text = re.sub(r"workloads: \[[^\]]*\]", "workloads: [@TMP@/tiny.yaml]", text)
    return re.sub(r"max_evals: \d+", f"max_evals: {EVALS}", text)


def targets() -> list[Target]:
    arch_dir = REPO / "arch_specs"
    eyeriss = _text(arch_dir / "eyeriss_like.yaml")
    eyeriss_cons = _text(arch_dir / "eyeriss_like.constraints.yaml")
    out = _timeloop_targets()
    for f in sorted(arch_dir.glob("*.yaml")):
        if not f.name.endswith(".constraints.yaml"):
            files = {"arch": _text(f)}
            base = re.search(r"^\s*extends:\s*(\S+)", files["arch"], re.M)
            if base:  # the base file sits next to the one that extends it, unmutated
                files[base.group(1)] = _text(arch_dir / base.group(1))
            out.append(Target(f"arch show:{f.name}", files,
                              lambda p, t: ["arch", "show", str(p["arch"])],
                              mutable=("arch",)))
    out.append(Target("import:vgg02_conv5.yaml",
                      {"spec": _text(REPO / "workloads" / "vgg02_conv5.yaml")},
                      lambda p, t: ["import", str(p["spec"]), "-o", str(t / "net.yaml")]))
    for f in sorted((REPO / "workloads").glob("*.yaml")):
        out.append(Target(f"workload show:{f.name}", {"net": _text(f)},
                          lambda p, t: ["workload", "show", str(p["net"])]))
        out.append(Target(f"workload stats:{f.name}", {"net": _text(f)},
                          lambda p, t: ["workload", "stats", str(p["net"])]))
    out.append(Target(
        "map:eyeriss_like", {"arch": eyeriss, "cons": eyeriss_cons, "layer": TINY_LAYER},
        lambda p, t: ["map", str(p["arch"]), str(p["cons"]), str(p["layer"]), "--max-evals",
                      EVALS, "-q", "--out", str(t / "out")]))
    for f in sorted((REPO / "mappings").glob("*.yaml")):
        if f.name.endswith(".pipeline.yaml"):
            continue  # pipeline schedules (docs/fusion.md), not mappings
        out.append(Target(
            f"model:{f.name}", {"arch": eyeriss,
                                "layer": _text(REPO / "workloads" / "vgg02_conv5.yaml"),
                                "map": _text(f)},
            lambda p, t: ["model", str(p["arch"]), str(p["layer"]), str(p["map"]), "-q",
                          "--out", str(t / "out")]))
    out.append(Target(
        "run:tiny", {"arch": eyeriss, "net": TINY_NET},
        lambda p, t: ["run", "--arch", str(p["arch"]), "--workload", str(p["net"]),
                      "--max-evals", EVALS, "-q", "--out", str(t / "out"), "--store",
                      str(t / "store.sqlite")]))
    for f in sorted((REPO / "sweeps").glob("*.yaml")):
        out.append(Target(
            f"sweep:{f.name}", {"sweep": _sweep_text(f, arch_dir), "tiny.yaml": TINY_NET},
            lambda p, t: ["sweep", str(p["sweep"]), "-q", "--out", str(t / "out"), "--store",
                          str(t / "store.sqlite")], mutable=("sweep", "tiny.yaml"),
            protect="max_evals"))
    return out


# ----------------------------------------------------------------------------- running


@dataclass
class Outcome:
    case: int
    target: str
    mutation: str
    exit_code: int | None
    seconds: float
    problem: str | None  # None = fine; else 'traceback', 'hang', 'memory' or 'exit N'
    output: str


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_case(i: int, target: Target, rng: random.Random | None, tmp: Path) -> Outcome:
    """Write the (mutated) inputs to tmp, run the subcommand, classify what happened."""
    tmp.mkdir(parents=True, exist_ok=True)
    texts = dict(target.files)
    what = "unmutated"
    if rng is not None:
        roles = list(target.mutable or texts)
        done = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            role = rng.choice(roles)
            texts[role], desc = mutate(rng, texts[role], target.protect)
            done.append(f"{role}: {desc}")
        what = "; ".join(done)
    paths = {}
    for role, text in texts.items():  # a role that is a file name keeps it (extends, tiny)
        name = role if role.endswith(".yaml") else f"{role}.yaml"
        paths[role] = tmp / name
        paths[role].write_text(text.replace("@TMP@", str(tmp)), encoding="utf-8",
                               errors="surrogatepass")
    argv = target.argv(paths, tmp)

    def alarm(signum, frame):
        raise CaseTimeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    t0 = time.perf_counter()
    try:
        result = CliRunner().invoke(main, argv)
    except CaseTimeout:
        return Outcome(i, target.name, what, None, time.perf_counter() - t0, "hang", "")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    took = time.perf_counter() - t0
    out = result.output
    problem = None
    if isinstance(result.exception, MemoryError) or "MemoryError" in out:
        problem = "memory"
    elif (result.exception is not None and not isinstance(result.exception, SystemExit)) or \
            "Traceback" in out or result.exit_code == 3:
        problem = "traceback"
    elif result.exit_code not in (0, 1, 2):
        problem = f"exit {result.exit_code}"
    if problem == "traceback" and result.exception is not None and \
            not isinstance(result.exception, SystemExit):
        out += f"\n{type(result.exception).__name__}: {str(result.exception)[:300]}"
    return Outcome(i, target.name, what, result.exit_code, took, problem, out[-600:])


def fuzz(n: int, seed: int, tmp: Path) -> list[Outcome]:
    """n seeded cases spread evenly over the subcommands (then over their input files)."""
    rng = random.Random(seed)
    all_targets = targets()
    by_command: dict[str, list[Target]] = {}
    for t in all_targets:
        by_command.setdefault(t.name.split(":")[0], []).append(t)
    commands = sorted(by_command)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY
                                            else min(cap, hard), hard))
    outcomes = []
    try:
        for i in range(n):
            target = rng.choice(by_command[commands[i % len(commands)]])
            case_rng = random.Random(rng.getrandbits(64))
            outcomes.append(run_case(i, target, case_rng, tmp / f"case{i}"))
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    bad = [o for o in outcomes if o.problem]
    counts = {k: sum(o.problem == k for o in bad) for k in ("traceback", "hang", "memory")}
    exits = {c: sum(o.exit_code == c for o in outcomes) for c in (0, 1, 2)}
    lines = [f"{len(outcomes)} cases: {counts['traceback']} tracebacks, {counts['hang']} hangs, "
             f"{counts['memory']} memory blow-ups, {len(bad) - sum(counts.values())} other; "
             f"exit 0/1/2: {exits[0]}/{exits[1]}/{exits[2]}; slowest "
             f"{max((o.seconds for o in outcomes), default=0):.1f} s"]
    for o in sorted(outcomes, key=lambda o: -o.seconds)[:3]:
        lines.append(f"slow: case {o.case} {o.target} [{o.mutation}] {o.seconds:.1f} s, "
                     f"exit {o.exit_code}")
    for o in bad:
        lines.append(f"case {o.case} {o.target} [{o.mutation}]: {o.problem}: "
                     f"{o.output.strip().splitlines()[-1:] if o.output.strip() else ''}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tests


def test_mutations_are_structured() -> None:
    rng = random.Random(1)
    text = "a:\n  b: 1\n  c: {d: 2, e: x}\n"
    seen = {mutate(rng, text)[1].split(" ")[0] for _ in range(200)}
    assert len(seen) >= 6  # values, key typos, deletions, duplicates, truncation, controls


def test_every_seed_runs_clean(tmp_path: Path) -> None:
    """Unmutated, every target succeeds: the fuzz cases start from valid input."""
    failures = []
    for i, target in enumerate(targets()):
        if target.name.startswith(("model:", "map:", "convert:", "import:")) and \
                "ispass" in target.name and i % 3:
            continue  # every Timeloop case is covered, a third of them per subcommand
        o = run_case(i, target, None, tmp_path / f"seed{i}")
        if o.exit_code != 0:
            failures.append(f"{target.name}: exit {o.exit_code}: {o.output[-300:]}")
    assert not failures, "\n".join(failures)


def test_fuzz_short(tmp_path: Path) -> None:
    """A fixed, seeded set of cases; its CPU time stays under 60 s (wall time depends on the
    machine's load, so the bound is on this process's CPU time)."""
    t0 = time.process_time()
    outcomes = fuzz(SHORT_CASES, seed=20261129, tmp=tmp_path)
    report = summary(outcomes)
    print(report)
    assert all(o.problem is None for o in outcomes), report
    assert {o.exit_code for o in outcomes} >= {0, 2}, "no valid or no invalid cases: weak fuzz"
    assert time.process_time() - t0 < 60, report


@pytest.mark.slow
def test_fuzz_long(tmp_path: Path) -> None:
    outcomes = fuzz(LONG_CASES, seed=int(os.environ.get("DSE_FUZZ_SEED", "1")), tmp=tmp_path)
    report = summary(outcomes)
    print(report)
    assert all(o.problem is None for o in outcomes), report


def _onnx_bytes() -> bytes:
    onnx = pytest.importorskip("onnx")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[2, 2], group=1),
             helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
             helper.make_node("MaxPool", ["r"], ["y"], name="/pool/MaxPool",
                              kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        [numpy_helper.from_array(np.zeros([8, 3, 3, 3], dtype=np.float32), "w")])
    return onnx.helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def test_onnx_byte_mutations_import_cleanly(tmp_path: Path) -> None:
    """Truncated, bit-flipped and spliced ONNX files: `dse import` exits 0 or 2, no traceback."""
    seed = _onnx_bytes()
    (tmp_path / "ok.onnx").write_bytes(seed)
    ok = CliRunner().invoke(main, ["import", str(tmp_path / "ok.onnx"), "-o",
                                   str(tmp_path / "ok.yaml")])
    assert ok.exit_code == 0, ok.output
    rng = random.Random(7)
    bad = []
    codes = set()
    for i in range(int(os.environ.get("DSE_FUZZ_ONNX_CASES", "60"))):
        data = bytearray(seed)
        op = i % 3
        if op == 0:
            data = data[:rng.randrange(len(data))]
        elif op == 1:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:
            pos = rng.randrange(len(data))
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        path = tmp_path / f"m{i}.onnx"
        path.write_bytes(bytes(data))
        result = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / f"m{i}.yaml")])
        codes.add(result.exit_code)
        if result.exit_code not in (0, 2) or "Traceback" in result.output or (
                result.exception is not None and not isinstance(result.exception, SystemExit)):
            bad.append(f"case {i} (op {op}): exit {result.exit_code}: {result.output[-300:]} "
                       f"{result.exception!r}")
    assert not bad, "\n".join(bad)
    assert 2 in codes, codes
