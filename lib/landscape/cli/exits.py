"""The drivers' exit codes (a leaf: the trainer reads them without importing h5py or MPI)."""
EXIT_OK = 0
EXIT_CRASH = 1        # an uncaught exception on some rank (the job is aborted)
EXIT_BAD_INPUT = 2    # bad flags or files; nothing was written
EXIT_PLOT_FAILED = 3  # the grid is complete but --plot could not draw it (reason printed); the results are kept
EXIT_RESULTS_MOVED = 3  # the results folder was moved or removed during the run and the file is not found after it
EXIT_STOPPED = 75     # stopped by SIGTERM/SIGUSR1 with the grid unfinished: rerun the same command to resume
