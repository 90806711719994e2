"""Notifications of the message relay provider."""
