"""Body models: the SMPL layer, its loaders, the open body model and joint sets. Imports nothing from data/."""
