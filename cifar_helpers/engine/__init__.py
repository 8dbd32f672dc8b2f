"""Training: parameters and their checks, the loop and its steps, checkpoints, the device, and the run record."""
