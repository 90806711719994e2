"""Triggers of the message relay provider."""
