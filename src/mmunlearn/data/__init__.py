"""Data layer: interaction files, splits as CSR, feature providers, forget requests."""

from mmunlearn.data.features import Modality
from mmunlearn.data.interactions import InteractionData

__all__ = ["InteractionData", "Modality"]
