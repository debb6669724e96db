"""Figures, the interactive page, the live view and ParaView files: arrays and results files in, files
out. May import job, files, inputs, curvature, space and the shared leaves; never cli/ or api/."""
