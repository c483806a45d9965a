"""Media functions over PyAV: the only package that imports av."""
