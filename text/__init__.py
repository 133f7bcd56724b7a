"""Tokenisers and vocabularies (Hugging Face `tokenizers`) shared by datamodules and tasks, saved in checkpoints."""
