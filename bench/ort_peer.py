"""The ONNX Runtime column of bench/embed.py and bench/rerank.py: the same Hugging Face model exported by the
benchmark itself (torch.onnx, fp32), run by onnxruntime's CPU provider with full graph optimisation.

What ORT is given is what sentence-transformers is given: texts sorted by length, batches of 32 padded to their
longest, tokenised by the model's own fast tokenizer inside the timed call. The exported graph includes the
pooling (mean + L2 normalisation for embeddings, the head's logit and sigmoid for a cross-encoder), so every
column returns the same numbers; callers check them against the reference before timing. The model is exported
with transformers' eager attention: its matmul-softmax-matmul is the pattern ORT's optimiser fuses into one
attention node (exported from SDPA it stayed unfused: bench/rerank.py's 200 documents took 10.4 s instead of
6.8 s, 1,000 sentences 4.9 s instead of 4.4 s, on the Intel Xeon).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


class _MeanPooled(torch.nn.Module):
    """BertModel -> mean over real tokens -> unit vector: sentence-transformers' all-MiniLM-L6-v2 pipeline."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


class _SigmoidLogit(torch.nn.Module):
    """BertForSequenceClassification with one label -> sigmoid: CrossEncoder.predict's default activation."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids, attention_mask, token_type_ids):
        logits = self.classifier(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).logits
        return torch.sigmoid(logits[:, 0])


class OrtModel:
    """An exported model, its session and its tokenizer; `__call__(items)` returns one numpy row per item."""

    def __init__(self, module: torch.nn.Module, tokenizer, threads: int, batch_size: int = 32):
        import onnxruntime as ort

        self.tokenizer, self.batch_size = tokenizer, batch_size
        example = tokenizer(["an example", "a somewhat longer example text"], padding=True, return_tensors="pt")
        folder = Path(tempfile.mkdtemp(prefix="bench-ort-"))
        path = folder / "model.onnx"
        module.eval()
        with torch.no_grad():
            # The TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency of this extra.
            torch.onnx.export(module, tuple(example[n] for n in NAMES), str(path), input_names=NAMES,
                              output_names=["out"], dynamo=False, opset_version=17,
                              dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in NAMES}, "out": {0: "batch"}})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # as many as torch uses in the same run
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        path.unlink()
        folder.rmdir()

    def __call__(self, items: list) -> np.ndarray:
        """`items`: texts, or (query, document) pairs. Longest first, as sentence-transformers orders them."""
        lengths = [-len(x) if isinstance(x, str) else -(len(x[0]) + len(x[1])) for x in items]
        order = np.argsort(lengths, kind="stable")
        out: list[np.ndarray | None] = [None] * len(items)
        for start in range(0, len(items), self.batch_size):
            chosen = order[start:start + self.batch_size]
            batch = [items[i] for i in chosen]
            if isinstance(batch[0], str):
                enc = self.tokenizer(batch, padding=True, truncation=True, return_tensors="np")
            else:
                enc = self.tokenizer([q for q, _ in batch], [d for _, d in batch], padding=True,
                                     truncation="only_second", return_tensors="np")
            feeds = {n: enc[n].astype(np.int64) for n in NAMES}
            for i, row in zip(chosen, self.session.run(None, feeds)[0]):
                out[i] = row
        return np.stack(out)


def embedder(model_dir: Path, threads: int) -> OrtModel:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.model_max_length = 256  # all-MiniLM-L6-v2's max_seq_length, as sentence-transformers truncates
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    return OrtModel(_MeanPooled(model), tokenizer, threads)


def cross_encoder(model_dir: Path, threads: int) -> OrtModel:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    return OrtModel(_SigmoidLogit(model), tokenizer, threads)
