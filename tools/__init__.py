"""Command-line entry points: stepwell-opt and stepwell."""
