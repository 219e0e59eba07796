"""Digests and reports sent over SMTP."""
