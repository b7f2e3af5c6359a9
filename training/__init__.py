"""Bi-encoder fine-tuning: data assembly, hard-negative mining, trainer."""
