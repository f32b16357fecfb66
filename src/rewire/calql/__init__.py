"""Offline-to-online fine-tuning: CQL and Cal-QL on SAC."""
