"""Do-not-call list: keyed phone hashes only, checked at upload and before every dial."""
