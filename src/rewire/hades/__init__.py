"""Behaviour distillation (HaDES) and supervised dataset distillation with the same ES machinery."""
