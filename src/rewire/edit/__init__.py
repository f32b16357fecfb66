"""RL for neural model editing: MaskWorld and ShiftWorld, where an agent edits a pretrained classifier's
weights (machine unlearning, bias mitigation)."""
