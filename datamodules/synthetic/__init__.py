"""Deterministic generated scenes of coloured shapes: drawing (:mod:`.shapes`) and captioned scenes
(:mod:`.caption_scenes`)."""
