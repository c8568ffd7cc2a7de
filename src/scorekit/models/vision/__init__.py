"""Models that see images: one file per family. `clip.py`: the two-tower bi-encoders (CLIPModel, SiglipModel,
Siglip2Model)."""
