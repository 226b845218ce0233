"""Models: the catalog, local checkpoints, the Hugging Face Hub, formats and families."""
