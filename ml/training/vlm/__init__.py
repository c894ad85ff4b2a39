"""VLM job kinds: `vlm_sft` and `vlm_dpo` (Qwen-VL + LoRA through trl); the configs import without torch."""
