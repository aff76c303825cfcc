"""On-site fine-tuning: ``sssseg finetune`` runs the ``sss`` method from the registry's active model
on the site's corrected cases plus its unlabeled scans, registers the result and applies the gate.

The training itself is ``training.run_training`` (same loop, config, atomic checkpoints, resume);
this package only plans the data split, tracks the run in the registry and gates the result.
"""

from __future__ import annotations

from .plan import FinetuneRequest, SitePlan, plan_site
from .run import FinetuneResult, run_finetune

__all__ = ["FinetuneRequest", "FinetuneResult", "SitePlan", "plan_site", "run_finetune"]
