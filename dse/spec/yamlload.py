"""YAML loading that remembers where every key came from and refuses repeated keys.

Mappings load as `Node` (a dict) carrying `file`, `line` and per-key lines, so any later check
can point at file:line. Tags such as Timeloop v0.4's `!Container` are kept under `_tag`.
Several files merge at their top level; a later file wins and the merge says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dse.errors import SpecError


class Node(dict):
    """A YAML mapping that knows its source location."""

    file: str | None = None
    line: int | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[str, int] = {}
        self.key_files: dict[str, str] = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)

    def file_of(self, key: str) -> str | None:
        return self.key_files.get(key, self.file)


class TaggedList(list):
    tag: str | None = None
    file: str | None = None
    line: int | None = None


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    source_name: str = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, tag: str | None = None) -> Node:
    own_count = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged_count = len(node.value) - own_count  # `<<:` entries come first after flattening
    from_merge: set = set()  # keys a merge brought in: the mapping's own keys may override them
    out = Node()
    out.file = loader.source_name
    out.line = node.start_mark.line + 1
    for idx, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list):
            key = tuple(key)
        line = key_node.start_mark.line + 1
        if idx < merged_count:
            from_merge.add(key)
        elif key in from_merge:
            from_merge.discard(key)
            out.pop(key)
        if key in out and idx >= merged_count:
            raise SpecError(
                f"key '{key}' appears twice in one mapping (first at line {out.key_lines[key]})",
                file=loader.source_name,
                line=line,
                hint="remove one of them; a key may be repeated only across files",
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
        out.key_files[key] = loader.source_name
    if tag:
        out["_tag"] = tag
    return out


def _construct_tagged(loader: _Loader, tag_suffix: str, node: yaml.Node):
    tag = "!" + tag_suffix
    if isinstance(node, yaml.MappingNode):
        return _construct_mapping(loader, node, tag)
    if isinstance(node, yaml.SequenceNode):
        seq = TaggedList(loader.construct_sequence(node, deep=True))
        seq.tag = tag
        seq.file = loader.source_name
        seq.line = node.start_mark.line + 1
        return seq
    value = loader.construct_scalar(node)
    return Node({"_tag": tag, "_value": value}) if value not in ("", None) else Node({"_tag": tag})


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_multi_constructor("!", _construct_tagged)


def load_yaml_text(text: str, source_name: str = "<string>"):
    loader = _Loader(text)
    loader.source_name = source_name
    try:
        return loader.get_single_data()
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise SpecError(
            f"this is not valid YAML: {problem}",
            file=source_name,
            line=line,
            hint=f"context: {exc.context}" if exc.context else None,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"this is not valid YAML: {exc}", file=source_name) from None
    finally:
        loader.dispose()


def read_spec_bytes(path: str | Path) -> bytes:
    """A spec file's bytes, or a SpecError saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, expected a YAML file", file=str(path)) from None


def read_spec_text(path: str | Path, raw: bytes | None = None) -> str:
    """A spec file's text (UTF-8), or a SpecError saying why it cannot be read."""
    try:
        return (read_spec_bytes(path) if raw is None else raw).decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("is not UTF-8 text", file=str(path)) from None


@dataclass
class Document:
    """Top-level keys merged from several files, with where each came from."""

    data: Node
    files: list[str]
    hashes: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def where(self, key: str) -> tuple[str | None, int | None]:
        return self.data.file_of(key), self.data.line_of(key)


def load_documents(paths: list[str | Path], jinja_data: dict | None = None) -> Document:
    """Merge YAML files at their top level; a key in a later file replaces the earlier one.

    A file with Jinja2 markup is rendered first (dse/spec/jinja.py), with `jinja_data`."""
    merged = Node()
    merged.file = None
    files: list[str] = []
    hashes: dict[str, str] = {}
    notes: list[str] = []
    for p in paths:
        name = str(p)
        raw = read_spec_bytes(p)
        hashes[name] = hashlib.sha256(raw).hexdigest()
        files.append(name)
        text = read_spec_text(p, raw)
        from dse.spec import jinja

        if jinja.needs_rendering(text):
            data = jinja.load_rendered(text, name, dict(jinja_data or {}), hashes)
        else:
            data = load_yaml_text(text, name)
        if data is None:
            notes.append(f"note: {name} is empty")
            continue
        if not isinstance(data, Node):
            raise SpecError(
                "the top level must be a mapping of keys (architecture:, problem:, mapping:, ...)",
                file=name,
                line=1,
                found=type(data).__name__,
            )
        for key, value in data.items():
            if key in merged:
                notes.append(
                    f"note: top-level key '{key}' from {name}:{data.line_of(key)} replaces the "
                    f"one from {merged.file_of(key)}:{merged.line_of(key)}"
                )
            merged[key] = value
            merged.key_lines[key] = data.line_of(key) or 1
            merged.key_files[key] = name
    return Document(merged, files, hashes, notes)
