"""mhr_tf: Motion HMR (Doersch & Zisserman, NeurIPS 2019) in TensorFlow/Keras."""
__version__ = "0.1.0"
