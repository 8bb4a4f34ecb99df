"""YAML loading that remembers where every key came from and refuses repeated keys.

Mappings load as `Node` (a dict) carrying `file`, `line` and per-key lines, so any later check
can point at file:line. Tags such as Timeloop v0.4's `!Container` are kept under `_tag`.
Several files merge at their top level; a later file wins and the merge says so.
libyaml parses; our own pass builds the values and bounds nesting depth and alias expansion,
so a hostile file gets a located error instead of a hang or a RecursionError.
"""

from __future__ import annotations

import hashlib
import re
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


MAX_DEPTH = 100
"""Deepest nesting of lists/mappings accepted; real specs stay below 10."""
MAX_ALIAS_COPIES = 100_000
"""Most values an input may create by repeating anchors (`*name`): bounds alias bombs."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# Characters YAML forbids in a stream (C0/C1 controls except tab, LF, CR, NEL; surrogates).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_SCALARS = yaml.constructor.SafeConstructor.yaml_constructors
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML has it


class _Builder:
    """Turns composed YAML nodes into Node/list/scalars, keeping each mapping's line numbers.

    Parsing and composing run in libyaml (fast, nesting-limited); this pass is ours so that
    depth, alias expansion and merge keys (`<<: *base` then overriding keys) are checked here.
    """

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.scalars = yaml.constructor.SafeConstructor()
        self.seen: set[int] = set()
        self.copies = 0

    def error(self, message: str, node: yaml.Node, **kw) -> SpecError:
        return SpecError(message, file=self.source_name, line=node.start_mark.line + 1, **kw)

    def build(self, node: yaml.Node, depth: int = 0):
        if depth > MAX_DEPTH:
            raise self.error(f"nesting is deeper than {MAX_DEPTH} levels", node,
                             hint="a spec nests a few levels; an anchor that contains itself "
                                  "(&a [*a]) also ends here")
        if id(node) in self.seen:
            self.copies += 1
            if self.copies > MAX_ALIAS_COPIES:
                raise self.error(
                    f"aliases (*name) expand to more than {MAX_ALIAS_COPIES:,} values", node,
                    hint="an anchor repeated inside anchors grows exponentially "
                         "(a 'billion laughs' input); write the values out instead")
        else:
            self.seen.add(id(node))
        tag = node.tag
        custom = tag.startswith("!")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, depth, tag if custom else None)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(child, depth + 1) for child in node.value]
            if not custom:
                return items
            seq = TaggedList(items)
            seq.tag, seq.file, seq.line = tag, self.source_name, node.start_mark.line + 1
            return seq
        if custom:
            value = node.value
            return Node({"_tag": tag, "_value": value}) if value not in ("", None) else Node(
                {"_tag": tag})
        constructor = _SCALARS.get(tag)
        if constructor is None or tag in (_MAP_TAG, _SEQ_TAG, _MERGE_TAG):
            raise self.error("unsupported YAML tag", node, found=tag,
                             expected="plain values, lists and mappings")
        try:
            return constructor(self.scalars, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.error(f"cannot read this {tag.rsplit(':', 1)[-1]} value ({exc})", node,
                             found=node.value) from None

    def key(self, key_node: yaml.Node, depth: int):
        key = self.build(key_node, depth + 1)
        if isinstance(key, list):
            key = tuple(key)
        try:
            hash(key)
        except TypeError:
            raise self.error("a mapping key must be a plain value, not a mapping", key_node,
                             found=key) from None
        return key

    def mapping(self, node: yaml.MappingNode, depth: int, tag: str | None) -> Node:
        own = Node()
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self.merge_sources(value_node, depth))
                continue
            key = self.key(key_node, depth)
            line = key_node.start_mark.line + 1
            if key in own:
                raise self.error(
                    f"key '{key}' appears twice in one mapping (first at line "
                    f"{own.key_lines[key]})", key_node,
                    hint="remove one of them; a key may be repeated only across files, or "
                         "override a key merged in with '<<'")
            own[key] = self.build(value_node, depth + 1)
            own.key_lines[key] = line
            own.key_files[key] = self.source_name
        out = own
        if merged:  # YAML merge keys: explicit keys win, then earlier merged mappings
            out = Node()
            for source in merged:
                for key, value in source.items():
                    if key not in out:
                        from_own = key in own
                        out[key] = own[key] if from_own else value
                        out.key_lines[key] = (own if from_own else source).line_of(key)
                        out.key_files[key] = self.source_name
            for key, value in own.items():
                if key not in out:
                    out[key] = value
                    out.key_lines[key] = own.key_lines[key]
                    out.key_files[key] = self.source_name
        out.file = self.source_name
        out.line = node.start_mark.line + 1
        if tag:
            out["_tag"] = tag
        return out

    def merge_sources(self, value_node: yaml.Node, depth: int) -> list[Node]:
        is_list = isinstance(value_node, yaml.SequenceNode)
        nodes = value_node.value if is_list else [value_node]
        out = []
        for child in nodes:
            value = self.build(child, depth + 1)
            if not isinstance(value, Node):
                raise self.error("a merge key '<<' takes a mapping or a list of mappings",
                                 child, found=value)
            out.append(value)
        return out


def _control_character_error(text: str, source_name: str) -> SpecError | None:
    match = _CONTROL.search(text)
    if match is None:
        return None
    pos = match.start()
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return SpecError(
        f"control character U+{ord(match.group()):04X} at column {column} is not allowed in "
        "YAML", file=source_name, line=line,
        hint="remove it (a binary or corrupted file?); use an escape such as \"\\t\" inside "
             "a double-quoted string")


def load_yaml_text(text: str, source_name: str = "<string>"):
    """Parse one YAML document into Node/TaggedList/scalars, or raise a located SpecError."""
    bad = _control_character_error(text, source_name)
    if bad is not None:
        raise bad
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
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
    return None if root is None else _Builder(source_name).build(root)


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
