"""LightningModules, one file per task, on shared bases (``tasks.base.Task``, ``tasks.sequence.SequenceTask``),
and predict.py's per-task adapters (``tasks.prediction``)."""
