"""AMF: active multi-task fine-tuning of a pretrained generalist policy."""
