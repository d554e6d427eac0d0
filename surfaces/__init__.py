"""Surfaces: a Matrix bot that gives every user a private workspace with their own AI agent."""

__version__ = "0.1.0"
