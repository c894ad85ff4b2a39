"""Tiny Qwen-VL models built from configs with a locally trained tokenizer: tests and benchmarks, no hub."""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The Qwen2-VL chat template, so prompts render exactly as they do for the released checkpoints.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Is there roadwork in this image? Answer yes or no.",
    "yes no yes no Yes No yes. no.",
    "yes — 3 traffic cones, 1 barrier, 2 drums, 1 sign, 1 machine, 1 person, 1 barricade",
    "You are a helpful assistant. system user assistant",
    "A road with cones and barriers; work zone ahead. There is no roadwork here.",
]


def build_tiny_tokenizer(path: Path):
    """A byte-level BPE tokenizer with the ChatML and vision special tokens, as a Qwen2TokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    tokenizer = Qwen2TokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


def _tiny_processor(path: Path, *, patch_size: int, qwen3: bool = False):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor, Qwen3VLProcessor

    tokenizer = build_tiny_tokenizer(path / "_tokenizer")
    # 4 to 16 merged image tokens per picture: enough to see something, small enough for CPU tests.
    side = patch_size * 2
    pixels = {"min_pixels": (2 * side) ** 2, "max_pixels": (4 * side) ** 2}
    size = {"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]}
    image_processor = Qwen2VLImageProcessor(size=size, **pixels, patch_size=patch_size, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=patch_size, merge_size=2)
    processor_class = Qwen3VLProcessor if qwen3 else Qwen2VLProcessor
    return processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _vision_token_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _text_settings(tokenizer) -> dict:
    # head_dim = 64 / 4 = 16, so mrope_section must sum to 8.
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": True,
    }


def _save(path: Path, model, processor) -> Path:
    model.save_pretrained(path)
    processor.save_pretrained(path)
    # The saved tokenizer config must not bring token_type_ids back: Qwen generate() rejects them.
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["model_input_names"] = ["input_ids", "attention_mask"]
    config_file.write_text(json.dumps(config, indent=2))
    return path


def build_tiny_qwen2_vl(path: Path, *, seed: int = 0) -> Path:
    """Writes a randomly initialised two-layer Qwen2-VL and its processor to `path`."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    processor = _tiny_processor(path, patch_size=14)
    text = _text_settings(processor.tokenizer)
    config = Qwen2VLConfig(
        **text,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": text["hidden_size"],
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        **_vision_token_ids(processor.tokenizer),
    )
    model = Qwen2VLForConditionalGeneration(config)
    return _save(path, model, processor)


def build_tiny_qwen3_vl(path: Path, *, seed: int = 0) -> Path:
    """Writes a randomly initialised two-layer Qwen3-VL (16-pixel patches, no deepstack) and its processor."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    processor = _tiny_processor(path, patch_size=16, qwen3=True)
    text = _text_settings(processor.tokenizer)
    config = Qwen3VLConfig(
        text_config={
            **text,
            "head_dim": 16,
            "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True},
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": text["hidden_size"],
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [],
        },
        tie_word_embeddings=True,
        **_vision_token_ids(processor.tokenizer),
    )
    model = Qwen3VLForConditionalGeneration(config)
    return _save(path, model, processor)
