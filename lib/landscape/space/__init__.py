"""Pure weight-space math over tensors: directions and their normalization, flat parameters, grids,
PCA, adaptive refinement, evaluation of loss and accuracy, precision, permutations of hidden units (their
structure traced with torch.fx, weight and activation matching). May import only the shared leaves."""
