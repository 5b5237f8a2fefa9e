"""Plain-torch numerics shared by the simulated AITER kernels (CPU or CUDA)."""
