"""Training: parameters and their checks, the loop and its eager step, the fast path (compiled and CUDA-graph
steps, the one-cycle recipe), checkpoints, the device, and the run record (the results file)."""
