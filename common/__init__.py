"""Beam transforms and clients both jobs use."""
