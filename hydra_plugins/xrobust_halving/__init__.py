"""xrobust's Hydra sweeper plugin: successive halving over the learning rate (`hydra/sweeper=halving`)."""
