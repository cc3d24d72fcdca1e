"""The ``/v1`` HTTP API: one router per concept."""
