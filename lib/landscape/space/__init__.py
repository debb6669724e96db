"""Pure weight-space math over tensors: directions and their normalization, flat parameters, grids,
PCA, adaptive refinement, evaluation of loss and accuracy, precision. May import only the shared leaves."""
