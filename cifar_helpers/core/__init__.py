"""What every layer uses: the workbook's errors, where things live, atomic files and locks, hashes, progress output."""
