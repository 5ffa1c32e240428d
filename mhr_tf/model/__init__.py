"""Motion HMR: trunk, temporal model, regressor heads."""
