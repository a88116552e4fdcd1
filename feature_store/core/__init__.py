"""Pure computation both jobs run, and the JAX kernels (`linalg`)."""
