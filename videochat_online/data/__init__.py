"""Inputs: images and frames to pixel values (video sources come with the streaming work)."""
