"""Accuracy references: what simple baselines score on the same data as the model."""
