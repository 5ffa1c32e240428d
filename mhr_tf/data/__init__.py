"""Decoders (file -> numpy example), pipeline steps and the tf.data assembly. Imports nothing from model/."""
