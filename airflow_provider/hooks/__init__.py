"""Hooks of the message relay provider."""
