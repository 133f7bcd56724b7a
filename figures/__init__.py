"""Attention pictures (maps over images, frame strips, hop maps, alignments, windows) and sending them to loggers."""

import matplotlib

matplotlib.use("Agg")  # no screen needed: every figure is rendered to an array or a file
