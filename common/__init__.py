"""Beam transforms, clients and settings that both jobs use."""
