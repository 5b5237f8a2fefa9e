"""Shadow references: precision-matched reference computations, Triton kernels, snapshots and the executor."""
