"""Thin entry points: build options, wire transforms, run."""
