"""Media inputs (images) for multimodal scoring: the parsed content of a request, where images come from, and
how they are decoded safely. Nothing here knows about models or the engine."""
