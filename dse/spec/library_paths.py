"""Where the bundled libraries live (arch_specs/, workloads/, mappings/).

In the repository they are top-level folders; a wheel or `pip install .` carries them inside the
package (`dse/arch_specs/`, ...; see pyproject's package-dir). Either way, one lookup.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # dse/


def bundled_dir(name: str) -> Path:
    """The installed copy `dse/NAME/` if there is one, else the checkout's top-level `NAME/`."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name
