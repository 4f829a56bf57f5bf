"""Developer tools: tiny checkpoints for tests and demos."""
