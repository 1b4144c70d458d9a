"""Fine-tuning and recalibrating a pair of networks on a user's paired low/full-dose scans (`petdiff finetune`)."""

from petdiff.finetune.run import FinetuneOptions, finetune

__all__ = ["FinetuneOptions", "finetune"]
