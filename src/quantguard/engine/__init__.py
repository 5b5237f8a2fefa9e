"""The patching engine: guards, runtime, sampling, reporting, CUDA-graph and torch.compile integration."""
