"""Batch segmentation of many studies (``sssseg batch``): resumable, in this process or on Ray workers.

    from SSSSegmentLib.batch import BatchOptions, run_batch
    summary = run_batch(BatchOptions(inputs=(Path("archive/"),), out_dir=Path("out")))

Roles: :mod:`.cases` finds the cases, :mod:`.results` keeps ``results.csv``, :mod:`.plan` decides
what a rerun does, :mod:`.worker` segments cases with a model loaded once, :mod:`.runners` runs
workers in-process or as Ray actors, :mod:`.engine` drives it all.
"""

from .engine import BatchOptions, BatchSummary, format_summary, run_batch
from .runners import RayOptions
from .worker import ModelSpec

__all__ = ["BatchOptions", "BatchSummary", "ModelSpec", "RayOptions", "format_summary", "run_batch"]
