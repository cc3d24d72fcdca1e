"""Actions: what a rule's verdict does (decisions, review, webhooks, evidence, notices)."""
