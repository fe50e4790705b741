"""Tokenizers and prompt layout.

From-scratch presets (`tiny`, `demo`) get a byte-level BPE trained with the `tokenizers` library on the project's own
text (sketch-world questions and traces), so any input string can be encoded and words common in the task suite are
single tokens. Real Qwen2.5-VL checkpoints keep their tokenizer; `add_sketch_tokens` adds ⟨START⟩, ⟨END⟩ and the
latent placeholder as special tokens.

User text never becomes a special token: `encode_text` encodes with `split_special_tokens=True`, so a question that
spells "<|sketch_start|>" literally is tokenized as ordinary characters. Special ids are only ever inserted by
`prompt_ids` and the engine.

Prompt layout (ChatML, the same for every checkpoint):
    <|im_start|>user\\n<|vision_start|><|image_pad|>×N<|vision_end|>…question<|im_end|>\\n<|im_start|>assistant\\n
and an answer ends with <|im_end|>.
"""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from model.core.model_config import END_TOKEN, LATENT_TOKEN, START_TOKEN

PAD_TOKEN = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SKETCH_TOKENS = [START_TOKEN, END_TOKEN, LATENT_TOKEN]
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD, *SKETCH_TOKENS]


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE over `texts`; the special tokens take the first ids."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD_TOKEN, eos_token=IM_END, additional_special_tokens=SPECIAL_TOKENS[1:]
    )
    wrapped.split_special_tokens = True
    return wrapped


def add_sketch_tokens(tokenizer) -> int:
    """Add ⟨START⟩, ⟨END⟩ and the latent placeholder to a pretrained tokenizer; returns how many were new."""
    missing = [t for t in SKETCH_TOKENS if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    tokenizer.split_special_tokens = True
    return added


def token_id(tokenizer, token: str) -> int:
    ids = tokenizer.convert_tokens_to_ids(token)
    if ids is None or ids == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no token {token!r}")
    return ids


def encode_text(tokenizer, text: str) -> list[int]:
    """Ordinary text → ids; special-token spellings stay ordinary characters."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def prompt_ids(tokenizer, question: str, num_images: int, tokens_per_image: int) -> list[int]:
    """The ChatML prompt: each image as vision_start + N placeholders + vision_end, then the question."""
    ids = [token_id(tokenizer, IM_START)] + encode_text(tokenizer, "user\n")
    image_block = [token_id(tokenizer, VISION_START)]
    image_block += [token_id(tokenizer, IMAGE_PAD)] * tokens_per_image + [token_id(tokenizer, VISION_END)]
    ids += image_block * num_images
    ids += encode_text(tokenizer, question) + [token_id(tokenizer, IM_END)]
    ids += encode_text(tokenizer, "\n") + [token_id(tokenizer, IM_START)] + encode_text(tokenizer, "assistant\n")
    return ids
