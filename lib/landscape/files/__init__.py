"""HDF5 files and their safety: results (layout, resume, checksums, lock, side files), directions,
PCA records and projections. May import inputs, curvature, space and the shared leaves."""
