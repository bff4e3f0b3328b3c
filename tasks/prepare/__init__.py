"""Preparing a corpus: per-speaker settings, the clip-window rule, one video, one speaker."""
