"""Beam transforms and clients that both jobs use."""
