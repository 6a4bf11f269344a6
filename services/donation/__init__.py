"""The donation service: charity campaigns and residents' self-help projects."""
