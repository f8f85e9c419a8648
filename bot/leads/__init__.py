"""Lead packs: decode messy files, normalise and check every row, keep every reject."""
