"""Cases: queues, the case state machine, decisions, comments and reviewer wellness."""
