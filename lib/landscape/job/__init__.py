"""Running a grid over MPI ranks: the world, devices, memory and batch choice, the dispatcher, progress,
and run_job, the one entry point. May import files, inputs, curvature, space and the shared leaves."""
