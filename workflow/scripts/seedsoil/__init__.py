"""seedsoil: metastasis gene-signature scoring for single-cell RNA-seq.

The public surface is :func:`score` (the scoring engine) and
:func:`load_signatures` (the curated, referenced signature library).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "score", "significance", "load_signatures"]

_LAZY = {
    "score": "seedsoil.scoring",
    "significance": "seedsoil.scoring",
    "load_signatures": "seedsoil.signatures",
}


def __getattr__(name: str):
    # Imported on first use so that `import seedsoil.<module>` stays light (no numba start-up).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seedsoil' has no attribute {name!r}")
