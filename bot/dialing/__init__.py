"""The dial path: planner (hopper), dialer, call runner, call store, Celery tasks and beat schedule."""
