"""petdiff: low-dose PET enhancement with conditional EDM diffusion models.

Stages (each imports only from the ones before it):
phantoms → physics → recon → data → models → diffusion → training → evaluate.

The public API, for a user's scans::

    from petdiff import load_enhancer, enhance_scan, read_scan, write_scan
    enhancer = load_enhancer()                       # the shipped regression + residual pair
    scan = read_scan("scan_low.nii.gz", fraction=0.25)
    result = enhance_scan(enhancer, scan, enhancer.settings("posterior"))
    write_scan(result.mean, "mean.nii.gz")
"""

__version__ = "0.1.0"

_API = {
    "Enhancer": "petdiff.inference", "PairEnhancer": "petdiff.inference", "DenoiserEnhancer": "petdiff.inference",
    "ModelSpec": "petdiff.inference", "SamplingSettings": "petdiff.inference", "ScanEnhancement": "petdiff.inference",
    "load_enhancer": "petdiff.inference", "load_pair": "petdiff.inference", "load_model": "petdiff.inference",
    "enhance_scan": "petdiff.inference", "enhance_slices": "petdiff.inference", "enhance_volume": "petdiff.inference",
    "Scan": "petdiff.io", "read_scan": "petdiff.io", "write_scan": "petdiff.io",
}
__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    """The public API, imported on first use (so `import petdiff` and the CLI's start stay light)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'petdiff' has no attribute {name!r}")
