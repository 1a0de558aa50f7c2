"""Tiny labelled corpora for tests, written by hand (the shipped corpus is tested on its own)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

TINY = {
    "police_public_order": [
        "小区门口有人打架，快来", "楼下两伙人打起来了", "有个醉汉在店里砸东西", "邻居在踹我家的门",
        "喂，烧烤摊那边有人在打人", "KTV包间里有人斗殴", "有人在广场上持棍追着打人", "两个人在菜市场扭打在一起",
        "网吧里有人闹事打人", "公交站有人打架流鼻血", "我老公喝醉了在家打我", "一群人在路口打群架",
    ],
    "police_criminal": [
        "我的钱包在地铁上被偷了", "电动车电瓶被盗了", "有人冒充客服骗了我三万块", "家里被撬门入室盗窃",
        "手机在公交上被扒了", "刚被人抢了包往东跑了", "对方让我转账到安全账户", "仓库里的铜线被人偷走了",
        "网上刷单被骗了八千", "店里收银台的钱被偷了", "有人在楼道里贩毒", "车窗被砸车里的包被偷",
    ],
    "convenience": [
        "我的车被堵了，麻烦挪一下车", "钥匙锁在家里了，想找个开锁的", "车子在路上没油了", "钱包落在出租车上了",
        "有辆车挡住了我家车库门", "家里的猫走丢了", "手机忘在饭店了想找回", "门打不开了，钥匙断在锁里",
        "小区门口有车堵住消防通道旁的出口，请挪车", "车没电了需要搭电", "行李箱落在高铁上了", "捡到一个钱包想交给失主",
    ],
    "utilities": [
        "小区停电两个小时了", "家里停水了什么时候来水", "暖气一点都不热", "水压太低洗不了澡",
        "这个月电费突然高了很多", "燃气表不走字了", "自来水发黄有异味", "小区突然断电了电梯也停了",
        "家里没有天然气了，打不着火", "热水管不热想报修", "电表显示欠费但我交过了", "楼里的水管漏水了要维修",
    ],
}


def tiny_rows() -> list[dict]:
    """48 rows: text, department, channel."""
    channel = {"police_public_order": "110", "police_criminal": "110", "convenience": "12345", "utilities": "12345"}
    return [{"text": t, "department": d, "channel": channel[d]} for d, texts in TINY.items() for t in texts]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8", columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------ tiny transformers
# Learning rates high enough that the tiny random base learns the 48 rows in 10 short epochs.
FAST_TRANSFORMER = dict(epochs=10, lr_encoder=2e-3, lr_head=5e-3, batch_size=8, val_fraction=0.25, early_stopping_patience=20)


def make_unigram_base(path, texts=None, hidden: int = 32, layers: int = 2, seed: int = 0):
    """A tiny XLM-R-style base (sentencepiece unigram tokenizer, <s>/<pad>/</s>/<unk>) + random BERT
    (hidden 32, 2 layers: a fine-tune takes about a second); ``texts``: default the tiny corpus's."""
    texts = texts or [r["text"] for r in tiny_rows()]
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, XLMRobertaTokenizerFast

    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.NFKC()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>", shrinking_factor=0.9)
    tk.train_from_iterator(["query: " + t for t in texts] + ["abcdefghijklmnopqrstuvwxyz 0123456789 .,:;!?"], trainer=trainer)
    tk.add_special_tokens(["<mask>"])
    tk.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok = XLMRobertaTokenizerFast(tokenizer_object=tk, model_max_length=128)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
                     max_position_embeddings=130, pad_token_id=tok.pad_token_id)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(path)
    tok.save_pretrained(path)
    (path / "hotline_base.json").write_text(json.dumps({"prefix": "query: ", "note": "tiny test model"}), encoding="utf-8")
    return path


def make_wordpiece_base(path, texts=None, hidden: int = 32, layers: int = 2, seed: int = 0):
    """A tiny bert-base-chinese-style base: character WordPiece vocabulary + random BERT (no prefix file)."""
    texts = texts or [r["text"] for r in tiny_rows()]
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted({c for t in texts for c in t if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *"abcdefghijklmnopqrstuvwxyz0123456789"]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))}, model_max_length=128)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
                     max_position_embeddings=130, pad_token_id=0)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_transformer(base, **params):
    """An unfitted TransformerTextClassifier on a tiny base (``make_unigram_base``) with the fast recipe."""
    from model.transformer import TransformerTextClassifier

    return TransformerTextClassifier(base_model=str(base), **{**FAST_TRANSFORMER, **params})
