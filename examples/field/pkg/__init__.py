"""A package whose module imports a sibling relatively."""
