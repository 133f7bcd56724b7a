"""Metrics the tasks share: caption scores, VQA accuracy, attention correctness, per-split and DDP helpers."""
