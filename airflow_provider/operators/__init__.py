"""Operators of the message relay provider."""
