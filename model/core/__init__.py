"""The model itself: config and presets, the modal-mixed wrapper around Qwen2.5-VL, the latent heads, image
preprocessing and pooling, tokenizers, checkpoints, and atomic file writes."""
