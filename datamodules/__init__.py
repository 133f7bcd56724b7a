"""LightningDataModules: embedded default data and loaders for the real dataset formats."""
