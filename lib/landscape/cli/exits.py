"""The drivers' exit codes (a leaf: the trainer reads them without importing h5py or MPI)."""
EXIT_OK = 0
EXIT_CRASH = 1        # an uncaught exception on some rank (the job is aborted)
EXIT_BAD_INPUT = 2    # bad flags or files; nothing was written
EXIT_PLOT_FAILED = 3  # the grid is complete but --plot could not draw it (reason printed); the results are kept
EXIT_WATCHED_JOB_GONE = 3  # render --watch: no job writes the file and its grid is unfinished; the last page is kept
EXIT_STOPPED = 75     # stopped by SIGTERM/SIGUSR1 with the grid unfinished: rerun the same command to resume
