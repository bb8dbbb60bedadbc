"""Training loop, phase schedules, metrics and checkpoints."""
