"""The Feast feature repository lives beside this package and is read by path, not imported."""
