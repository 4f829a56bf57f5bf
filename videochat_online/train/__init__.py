"""Training: annotation formats, sampling, tokenisation, datasets and the SFT entry point."""
