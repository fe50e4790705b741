"""torch.compile for a training step: the parts of the model where a step's time goes, compiled in place.

    compile_for_training(model)      # stages 0 and 1 with `compile: true` (model/training/sft.py)

What is compiled: the language model (the decoder layers: the bulk of a step's matmuls, attention and the
element-wise work around them, which inductor fuses) and each residual block of the latent head (AdaLN: layer norm,
modulation, MLP). Both with `dynamic=True`, because rows, latent slots and pictures vary from batch to batch: one
graph with symbolic sizes instead of a recompilation per shape. What is not: the rest of `ModalMixedModel.forward`
(finding latent slots, placing latents and image tokens, the sketch-gate mask, the loss), which reads token ids in
Python and would break the graph or recompile per batch.

`nn.Module.compile` compiles in place, so the state dict keeps its names and checkpoints load in an uncompiled model
(and the other way round). The first steps pay the compilation (about a minute on two CPU cores; inductor's cache
in the temp folder makes later runs start faster); benchmarks/bench_train.py reports it apart from the step.
GRPO is not compiled: its rollouts decode through the KV cache with shapes that change every token.
"""

import torch


def compile_for_training(model) -> None:
    """Compile `model`'s language model and latent-head blocks in place (dynamic shapes)."""
    model.backbone.model.language_model.compile(dynamic=True)
    if model.head is not None:
        for block in model.head.blocks:
            block.compile(dynamic=True)


def is_compiled(module: torch.nn.Module) -> bool:
    """Whether `module` was compiled in place (nn.Module.compile)."""
    return getattr(module, "_compiled_call_impl", None) is not None
