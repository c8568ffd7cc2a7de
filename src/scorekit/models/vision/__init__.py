"""Models that see images, one file per family: `clip.py` the two-tower bi-encoders (CLIPModel, SiglipModel,
Siglip2Model), `colpali.py` ColPali/ColQwen2 late interaction, `qwen_vl.py` the Qwen-VL decoders."""
