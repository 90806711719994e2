"""Sensors of the message relay provider."""
