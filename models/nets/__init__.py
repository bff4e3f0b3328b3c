"""The seed models, one module each."""
