"""OVBench evaluation: question files, protocols, results, and the (multi-process, resumable) runner."""
