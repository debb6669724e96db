"""The drivers' exit codes (a leaf: the trainer reads them without importing h5py or MPI).

An error is exit 2 while nothing is written, exit 3 once the run's results file exists (created, or
checked to resume: job.run.JobOptions.on_results tells cli/run.guarded_main). The first stop signal
decides exit 75; later ones change nothing (job/stops.py).
"""
EXIT_OK = 0
EXIT_CRASH = 1          # an uncaught exception on some rank (the job is aborted)
EXIT_BAD_INPUT = 2      # bad flags or files, refused before any results file was made; nothing was written
EXIT_RESULTS_KEPT = 3   # an error once the results file existed (a failed --plot included): the results are kept
EXIT_PLOT_FAILED = EXIT_RESULTS_KEPT  # the grid is complete but --plot could not draw it (reason printed)
EXIT_WATCHED_JOB_GONE = EXIT_RESULTS_KEPT  # render --watch: no job writes the file and its grid is unfinished
EXIT_STOPPED = 75       # stopped by SIGTERM/SIGUSR1 before the work was done: rerun the same command to go on


def one_line(error):
    """An error's message on one line (a library's text, HDF5's, may hold line breaks)."""
    return " ".join(str(error).split())
