"""Training on accelerate: stage 0 (warm-up), stage 1 (SFT), stage 2 (GRPO), their config and checkpoints."""
