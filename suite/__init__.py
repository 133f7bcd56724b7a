"""Run plumbing shared by train.py (and later predict.py): config checks, W&B set-up, callbacks."""
