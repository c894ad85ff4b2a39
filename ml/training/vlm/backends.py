"""Loading a Qwen-VL model for LoRA training: plain peft anywhere, QLoRA and Unsloth on CUDA only."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ml.training.common.runtime import hub_offline
from ml.training.vlm.config import VlmBaseConfig, VlmDpoConfig


@dataclass(frozen=True)
class TrainingDevice:
    cuda: bool
    bf16: bool
    fp16: bool
    gradient_checkpointing: bool

    def trainer_arguments(self) -> dict[str, Any]:
        return {
            "use_cpu": not self.cuda,
            "bf16": self.bf16,
            "fp16": self.fp16,
            "gradient_checkpointing": self.gradient_checkpointing,
            "gradient_checkpointing_kwargs": {"use_reentrant": False}
            if self.gradient_checkpointing
            else None,
        }


@dataclass
class LoadedVlm:
    model: Any
    processor: Any
    peft_config: Any | None  # None when the backend already wrapped the model in its adapter


def _package_installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def check_backend_available(config: VlmBaseConfig, *, cuda_available: bool | None = None) -> None:
    """Raises RuntimeError when the chosen backend or quantization cannot run on this machine."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    needs = []
    if config.backend == "unsloth":
        needs.append(("backend='unsloth'", "unsloth"))
    if config.quantization == "4bit":
        needs.append(("quantization='4bit'", "bitsandbytes"))
    for what, package in needs:
        if not cuda_available:
            raise RuntimeError(
                f"{what} needs a CUDA GPU and this machine has none; use backend='peft', quantization='none'"
            )
        if not _package_installed(package):
            raise RuntimeError(f"{what} needs the {package!r} package, which is not installed on this worker")


def training_device(config: VlmBaseConfig) -> TrainingDevice:
    import torch

    if not torch.cuda.is_available():
        return TrainingDevice(cuda=False, bf16=False, fp16=False, gradient_checkpointing=False)
    bf16 = torch.cuda.is_bf16_supported()
    return TrainingDevice(
        cuda=True, bf16=bf16, fp16=not bf16, gradient_checkpointing=config.gradient_checkpointing
    )


def _gets_lora(name: str, config: VlmBaseConfig) -> bool:
    if "visual" not in name.split("."):
        return name.rsplit(".", 1)[-1] in config.lora_target_modules
    return config.train_vision_merger and "merger" in name


def lora_target_names(model: Any, config: VlmBaseConfig) -> list[str]:
    """Full names of the linear layers that get LoRA: the language model's, plus the vision merger's on request."""
    import torch

    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and _gets_lora(name, config):
            names.append(name)
    if not names:
        raise ValueError(
            f"lora_target_modules: none of {config.lora_target_modules} is a linear layer of the model"
        )
    return names


def limit_image_pixels(processor: Any, max_pixels: int | None) -> None:
    """Caps the pixels per image (hence image tokens) the processor produces."""
    if max_pixels is None:
        return
    image_processor = processor.image_processor
    min_pixels = min(getattr(image_processor, "min_pixels", None) or max_pixels, max_pixels)
    image_processor.max_pixels = max_pixels
    image_processor.min_pixels = min_pixels
    image_processor.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}


def load_processor(path: str, max_pixels: int | None) -> Any:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    # transformers 4.57: Qwen-VL generate() rejects token_type_ids.
    processor.tokenizer.model_input_names = ["input_ids", "attention_mask"]
    limit_image_pixels(processor, max_pixels)
    return processor


def _peft_model(config: VlmBaseConfig, device: TrainingDevice) -> LoadedVlm:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if device.bf16 else torch.float32}
    if config.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if device.bf16 else torch.float16,
        )
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForImageTextToText.from_pretrained(config.model_name_or_path, **kwargs)
    if config.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=device.gradient_checkpointing
        )
    if isinstance(config, VlmDpoConfig) and config.init_adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.init_adapter_path).merge_and_unload()
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_names(model, config),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return LoadedVlm(model, load_processor(config.model_name_or_path, config.max_image_pixels), peft_config)


def _unsloth_model(config: VlmBaseConfig, device: TrainingDevice) -> LoadedVlm:
    from unsloth import FastVisionModel

    model, _ = FastVisionModel.from_pretrained(
        config.model_name_or_path,
        load_in_4bit=config.quantization == "4bit",
        use_gradient_checkpointing="unsloth" if device.gradient_checkpointing else False,
    )
    # Unsloth's switch covers the whole vision tower, not the merger alone.
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=config.train_vision_merger,
        finetune_language_layers=True,
        finetune_attention_modules=True,
        finetune_mlp_modules=True,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias="none",
        random_state=config.seed,
    )
    FastVisionModel.for_training(model)
    return LoadedVlm(model, load_processor(config.model_name_or_path, config.max_image_pixels), None)


def load_vlm(config: VlmBaseConfig) -> tuple[LoadedVlm, TrainingDevice]:
    """The model to train, its processor and the LoRA config trl should apply (None if already applied)."""
    hub_offline()
    check_backend_available(config)
    device = training_device(config)
    loaded = _unsloth_model(config, device) if config.backend == "unsloth" else _peft_model(config, device)
    return loaded, device
