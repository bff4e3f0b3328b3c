"""Project operations: dvc commands, reproducibility audits, the dataset report."""
