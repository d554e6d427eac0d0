"""Surfaces: a Matrix bot that gives every user a private workspace with their own AI agent."""
