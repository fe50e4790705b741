"""True sketches: the self-reconstruction targets of an example's reasoning images, in the order its trace draws
them. The one place oracle latents are computed (evaluation's oracle mode, the app's examples, the read-back probe).

    sketches = true_sketches(model, examples)   # per example (num_sketches, K, D), or None without sketches
"""

from model.data.zebra import Sketch


def true_sketches(model, examples) -> list:
    """Per example, its true sketch targets (num_sketches, K, D) on the CPU in trace order; None without sketches.
    All reasoning images go through the frozen encoder in one batch (`model.sketch_targets`)."""
    images = [img for ex in examples for img in ex.reasoning_images]
    pooled = model.sketch_targets(images).float().cpu() if images else None  # (N, K, D)
    out, start = [], 0
    for ex in examples:
        mine = pooled[start : start + len(ex.reasoning_images)] if images else None
        start += len(ex.reasoning_images)
        order = [s.image_index for s in ex.segments if isinstance(s, Sketch)]  # an image may be drawn twice
        out.append(mine[order] if order else None)
    return out
