"""The simulator: open bodies in motion, rendered onto moving backgrounds, written in the real file formats."""
