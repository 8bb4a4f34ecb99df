"""Read Timeloop's printed mapping (`*.map.txt`) back into mapping directives (test-side).

Older mapper runs (v0.3 era) left only this text, not a `map.yaml`. Each block is one storage
level: `NAME [ Tensor:tile ... ]` names the tensors it keeps, then its loops outer to inner;
loops marked `(Spatial-X)`/`(Spatial-Y)` are the fan-out below that level.
"""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^(\S+) \[(.*)\]\s*$")
_LOOP = re.compile(r"^\|\s*for (\w+) in \[0:(\d+)\)\s*(\(Spatial-([XY])\))?\s*$")


def read_map_txt(path: Path, dims: list[str], tensors: list[str]) -> list[dict]:
    """Directives (`mapping:` list) equivalent to the printed loop nest."""
    levels: list[dict] = []
    for line in Path(path).read_text().splitlines():
        h = _HEADER.match(line.strip())
        if h and not line.startswith("|"):
            kept = [t.split(":")[0] for t in h.group(2).split() if ":" in t]
            levels.append({"name": h.group(1), "keep": kept, "T": [], "X": [], "Y": []})
            continue
        m = _LOOP.match(line.strip())
        if m and levels:
            levels[-1][m.group(4) or "T"].append((m.group(1), int(m.group(2))))
    out: list[dict] = []
    for lv in levels:
        out.append({"target": lv["name"], "type": "datatype", "keep": lv["keep"],
                    "bypass": [t for t in tensors if t not in lv["keep"]]})
        t_dims = [d for d, _ in lv["T"]]
        inner_first = t_dims[::-1] + [d for d in dims if d not in t_dims]
        out.append({"target": lv["name"], "type": "temporal",
                    "factors": " ".join(f"{d}={n}" for d, n in lv["T"]),
                    "permutation": "".join(inner_first)})
        if lv["X"] or lv["Y"]:
            x = [d for d, _ in lv["X"]][::-1]
            y = [d for d, _ in lv["Y"]][::-1]
            rest = [d for d in dims if d not in x and d not in y]
            out.append({"target": lv["name"], "type": "spatial",
                        "factors": " ".join(f"{d}={n}" for d, n in lv["X"] + lv["Y"]),
                        "permutation": "".join(x + y + rest), "split": len(x)})
    return out
