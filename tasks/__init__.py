"""LightningModules, one file per task, plus task-level metrics and figure logging."""
