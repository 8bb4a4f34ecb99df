"""Jinja2 templates as Timeloop's v0.4 front end renders them (`top.yaml.jinja2`, `{{ }}` in
arch files), in a sandbox, with undefined names as errors.

The front end's helpers are provided: `include(path, key)` (one key of another YAML file, itself
rendered with the same data), `include_all(glob, key)` (the lists under that key in every matching
file, joined), `cwd()`, `add_to_path(dir)` and `path_exists(path)`. Relative paths resolve against
the template's folder, then the folders given to `add_to_path`.

`include` does not paste text: it leaves a one-line placeholder that the YAML loader replaces with
the included file's own nodes, so every key keeps the file and line it was written at, and the
rendered template keeps the template's line numbers.
"""

from __future__ import annotations

import glob as globlib
import re
from pathlib import Path

from dse.errors import SpecError

MARKERS = ("{{", "{%", "{#")
INCLUDE_TAG = "!dse_include"


def needs_rendering(text: str) -> bool:
    return any(m in text for m in MARKERS)


class Includes:
    """What `include`/`include_all` asked for, in order; the loader resolves each placeholder."""

    def __init__(self) -> None:
        self.items: list[tuple[list[Path], str, bool]] = []

    def add(self, paths: list[Path], key: str, many: bool) -> str:
        self.items.append((paths, key, many))
        return f"{INCLUDE_TAG} '{len(self.items) - 1}'"


def _template_line(exc: BaseException, name: str) -> int | None:
    line = getattr(exc, "lineno", None)
    if line:
        return line
    tb = exc.__traceback__
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def render(text: str, source: str, data: dict, includes: Includes) -> str:
    """Render `text` (the file `source`) with `data`; errors become SpecError at file:line."""
    try:
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 is a core dependency
        raise SpecError("this file is a Jinja2 template, and jinja2 is not installed",
                        file=source, hint="pip install jinja2") from None
    folder = Path(source).resolve().parent
    search = [folder]

    def resolve(path: str) -> Path:
        p = Path(str(path))
        if p.is_absolute():
            return p
        for base in search:
            if (base / p).exists():
                return base / p
        return folder / p

    def include(path: str, key: str = "") -> str:
        p = resolve(path)
        if not p.is_file():
            raise SpecError(f"include('{path}'): file not found", file=source,
                            hint=f"looked in {', '.join(str(s) for s in search)}")
        return includes.add([p], str(key), many=False)

    def include_all(pattern: str, key: str = "") -> str:
        base = Path(str(pattern))
        pat = str(base if base.is_absolute() else folder / base)
        paths = [Path(p) for p in sorted(globlib.glob(pat))]
        return includes.add(paths, str(key), many=True)

    def add_to_path(path: str) -> str:
        p = Path(str(path))
        search.append(p if p.is_absolute() else folder / p)
        return ""

    def path_exists(path: str) -> bool:
        return resolve(path).exists()

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                               loader=jinja2.FileSystemLoader(str(folder)))
    env.globals.update(include=include, include_all=include_all, cwd=lambda: str(folder),
                       add_to_path=add_to_path, path_exists=path_exists)
    try:
        template = env.from_string(text)
        return template.render(**data)
    except SpecError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(f"Jinja2 template error: {exc.message}", file=source,
                        line=exc.lineno) from None
    except jinja2.UndefinedError as exc:
        raise SpecError(f"Jinja2 template uses an undefined value: {exc.message}", file=source,
                        line=_template_line(exc, "<template>"),
                        hint="pass it with --jinja-data NAME=VALUE") from None
    except jinja2.TemplateError as exc:
        raise SpecError(f"Jinja2 template error: {exc}", file=source,
                        line=_template_line(exc, "<template>")) from None


def parse_data(items: tuple[str, ...] | list[str]) -> dict:
    """`NAME=VALUE` pairs (VALUE read as YAML: numbers stay numbers) -> template data."""
    import yaml

    out: dict = {}
    for item in items:
        m = re.match(r"^\s*([A-Za-z_]\w*)\s*=(.*)$", item)
        if not m:
            raise SpecError(f"cannot read template data '{item}'", expected="NAME=VALUE")
        try:
            out[m.group(1)] = yaml.safe_load(m.group(2))
        except yaml.YAMLError:
            out[m.group(1)] = m.group(2)
    return out


def load_rendered(text: str, source: str, data: dict, hashes: dict[str, str]):
    """Render a template, parse it, and put the included files' nodes where they were asked for."""
    from dse.spec.yamlload import load_yaml_text

    includes = Includes()
    tree = load_yaml_text(render(text, source, data, includes), source)
    return _substitute(tree, includes, data, hashes, source)


def _included(path: Path, key: str, data: dict, hashes: dict[str, str], source: str):
    import hashlib

    from dse.spec.yamlload import load_yaml_text, read_spec_bytes, read_spec_text

    raw = read_spec_bytes(path)
    hashes[str(path)] = hashlib.sha256(raw).hexdigest()
    text = read_spec_text(path, raw)
    tree = (load_rendered(text, str(path), data, hashes) if needs_rendering(text)
            else load_yaml_text(text, str(path)))
    for part in [k for k in key.split(".") if k]:
        if not isinstance(tree, dict) or part not in tree:
            raise SpecError(f"include: {path} has no key '{key}'", file=source,
                            found=", ".join(map(str, tree)) if isinstance(tree, dict) else None)
        tree = tree[part]
    return tree


def _substitute(obj, includes: Includes, data: dict, hashes: dict[str, str], source: str):
    if isinstance(obj, dict) and obj.get("_tag") == INCLUDE_TAG:
        paths, key, many = includes.items[int(obj["_value"])]
        if not many:
            return _included(paths[0], key, data, hashes, source)
        joined: list = []
        for p in paths:
            part = _included(p, key, data, hashes, source)
            joined.extend(part if isinstance(part, list) else [part])
        return joined
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _substitute(obj[k], includes, data, hashes, source)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = _substitute(v, includes, data, hashes, source)
    return obj
