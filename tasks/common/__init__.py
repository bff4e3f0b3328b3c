"""Plumbing every stage shares.

Errors, atomic writes, native threads and logs, process set-up, executables.
"""
