"""Pure curvature over tensors: Hessian-vector products, Lanczos, trace, spectral density, every
quantity at one point and the plan of a map. May import space and the shared leaves."""
