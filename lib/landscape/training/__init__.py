"""The trainer's pieces: the reference's init and schedule, epochs on device-resident data, its RNG and
checkpoint files. May import every package below api/ (plot and lower)."""
