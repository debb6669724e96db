"""Command-line drivers. Each parses flags, then calls the library; no math lives here."""
