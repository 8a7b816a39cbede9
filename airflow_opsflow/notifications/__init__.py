"""Alert routes (Slack, email) and notifiers of opsflow."""
