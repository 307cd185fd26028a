"""Tag management (Settings > Tags): list with counts, rename, colour, merge, recycle bin."""
