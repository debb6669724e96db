"""Command-line drivers: flags to API calls, exit codes, --plot; the only place that knows argparse.
May import every package, api/ included; nothing imports it but the entry points."""
