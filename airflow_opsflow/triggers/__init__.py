"""Triggers (deferrable waits) of opsflow."""
