"""Data: Zebra-CoT rows and folders → examples → token ids and latent slots, stage-0 pairs, the visual cache."""
