"""dse: a design-space explorer for DNN accelerators (Timeloop-compatible loop-nest model)."""

__version__ = "0.1.0"

# The name on the package index (`dse` there is an unrelated project); command and import: dse.
DISTRIBUTION = "dnn-accel-dse"


def install_hint(extra: str) -> str:
    """How to get an optional extra, for error messages."""
    return f"pip install '{DISTRIBUTION}[{extra}]' (in a checkout: pip install -e '.[{extra}]')"
