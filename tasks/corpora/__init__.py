"""Corpus recipes: download a corpus into one documented layout and write its raw manifest.

One module per corpus, in the style of lhotse's recipes: the module docstring says what the
corpus is, where it comes from, how to cite it, and the quirks of its mirrors.
"""
