"""Training: phases as data (phase), the one loop (loop), approaches as phase schedules (approaches),
batch orders (samplers), optimizers (optim), scoring (evaluation, metrics), model files (checkpoint)."""
