"""Run plumbing shared by train.py, eval.py and predict.py: building a task from its config, precision, W&B
set-up, callbacks, checkpoints, evaluation and prediction drivers."""
