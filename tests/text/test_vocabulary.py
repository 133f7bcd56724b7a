"""text.vocabulary: fixed special ids, counting == encoding, padding, decoding, JSON round trip."""

import pickle

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from text.vocabulary import Vocabulary

TEXTS = [
    "A dog runs on the grass.",
    "The dog jumps, the cat sleeps!",
    "a cat on a mat",
    "Zebra",
]


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build(TEXTS)


def test_special_ids_are_fixed(vocab):
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert (Vocabulary.PAD_ID, Vocabulary.BOS_ID, Vocabulary.EOS_ID, Vocabulary.UNK_ID) == (0, 1, 2, 3)
    assert vocab.words([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    for token, i in [("<pad>", 0), ("<bos>", 1), ("<eos>", 2), ("<unk>", 3)]:
        assert vocab.tokenizer.token_to_id(token) == i


def test_ids_follow_count_then_word(vocab):
    # counts (lowercased): a 3, the 3, dog 2, cat 2, on 2, then once each: ! , . grass jumps mat runs sleeps zebra
    expected = ["a", "the", "cat", "dog", "on", "!", ",", ".", "grass", "jumps", "mat", "runs", "sleeps", "zebra"]
    assert vocab.words(range(4, len(vocab))) == expected
    assert len(vocab) == 4 + len(expected)


def test_ids_do_not_depend_on_text_order():
    forward = Vocabulary.build(TEXTS)
    backward = Vocabulary.build(list(reversed(TEXTS)))
    assert forward.to_json() == backward.to_json()
    assert forward.words(range(len(forward))) == backward.words(range(len(backward)))


def test_min_count_and_max_size():
    vocab = Vocabulary.build(TEXTS, min_count=2)
    assert vocab.words(range(4, len(vocab))) == ["a", "the", "cat", "dog", "on"]
    assert vocab.encode("zebra grass") == [vocab.unk_id, vocab.unk_id]
    capped = Vocabulary.build(TEXTS, max_size=6)
    assert len(capped) == 6 and capped.words(range(4, 6)) == ["a", "the"]
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(TEXTS, min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(TEXTS, max_size=3)


def test_encode_lowercases_splits_punctuation_and_maps_unknown_to_unk(vocab):
    ids = vocab.encode("THE Dog, flies!")
    assert vocab.words(ids) == ["the", "dog", ",", "<unk>", "!"]
    assert vocab.encode("") == []
    assert vocab.encode("qwerty") == [vocab.unk_id]


def test_case_kept_when_not_lowercasing():
    vocab = Vocabulary.build(["Dog dog"], lowercase=False)
    assert vocab.words(range(4, len(vocab))) == ["Dog", "dog"]
    assert vocab.encode("DOG") == [vocab.unk_id]


def test_counting_splits_exactly_as_encoding():
    texts = ["Hello... world!? it's 3.5 km <unk> x<eos>y", "CAFÉ café ｆｕｌｌ-width"]
    vocab = Vocabulary.build(texts)
    for text in texts:
        # every counted word is in the vocabulary, so encoding gives back exactly the counted words
        words = [w for w in vocab.words(vocab.encode(text)) if w not in ("<unk>", "<eos>")]
        assert words == Vocabulary.split_words(text)
    # a literal special token is matched whole (never counted as "<", "unk", ">"), as tokenizers does
    assert vocab.words(vocab.encode("x<eos>y <unk>")) == ["x", "<eos>", "y", "<unk>"]
    assert "unk" not in Vocabulary.split_words("<unk>")
    assert vocab.encode("ｆｕｌｌ") == vocab.encode("full")  # NFKC


def test_encode_batch_pads_and_reports_lengths(vocab):
    ids, lengths = vocab.encode_batch(["a dog", "the cat on a mat", ""])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (3, 7)
    assert lengths.tolist() == [4, 7, 2]
    a, dog = vocab.encode("a dog")
    assert ids[0].tolist() == [1, a, dog, 2, 0, 0, 0]
    assert ids[2].tolist() == [1, 2, 0, 0, 0, 0, 0]
    assert (ids[1] != vocab.pad_id).all()
    # padding is exactly the positions past each length
    assert torch.equal(ids != vocab.pad_id, torch.arange(7)[None, :] < lengths[:, None])


def test_encode_batch_truncates_words(vocab):
    ids, lengths = vocab.encode_batch(["the cat on a mat", "a"], max_len=2)
    assert lengths.tolist() == [4, 3]
    assert ids[0].tolist() == [1, *vocab.encode("the cat"), 2]
    ids, lengths = vocab.encode_batch(["the cat"], max_len=0)
    assert ids.tolist() == [[1, 2]] and lengths.tolist() == [2]
    with pytest.raises(TypeError, match="single str"):
        vocab.encode_batch("a dog")


def test_decode_stops_at_eos_and_skips_bos_pad(vocab):
    the, cat, dog = vocab.encode("the cat dog")
    assert vocab.decode([1, the, cat, 2, dog, 0]) == "the cat"
    assert vocab.decode(torch.tensor([1, the, 0, cat, 3])) == "the cat <unk>"
    assert vocab.decode([2, the]) == ""
    assert vocab.decode([]) == ""
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([1, len(vocab)])


def test_decode_batch_inverts_encode_batch(vocab):
    texts = ["the dog runs on the grass .", "a cat", "zebra , zebra !"]
    ids, _ = vocab.encode_batch(texts)
    assert vocab.decode_batch(ids) == texts
    assert vocab.decode_batch(ids.tolist()) == texts
    assert vocab.decode_batch(vocab.encode_batch(["A  Dog\tRuns!"])[0]) == ["a dog runs !"]
    with pytest.raises(ValueError, match="2-D"):
        vocab.decode_batch(ids[0])


def test_id_to_word_range(vocab):
    assert vocab.id_to_word(vocab.encode("dog")[0]) == "dog"
    with pytest.raises(ValueError, match="out of range"):
        vocab.id_to_word(len(vocab))
    with pytest.raises(ValueError, match="out of range"):
        vocab.id_to_word(-1)


def test_json_round_trip_gives_identical_encodes(vocab):
    restored = Vocabulary.from_json(vocab.to_json())
    assert isinstance(vocab.to_json(), str)
    assert len(restored) == len(vocab)
    for text in [*TEXTS, "unknown words, THE DOG!", ""]:
        assert restored.encode(text) == vocab.encode(text)
    a, b = vocab.encode_batch(TEXTS, max_len=3), restored.encode_batch(TEXTS, max_len=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # a checkpoint dict holds the plain string
    ckpt = pickle.loads(pickle.dumps({"vocabulary": vocab.to_json()}))
    assert Vocabulary.from_json(ckpt["vocabulary"]).encode("a dog") == vocab.encode("a dog")
    with pytest.raises(ValueError, match="tokenizer"):
        Vocabulary.from_json("{not json")


def test_vocabulary_pickles_for_dataloader_workers(vocab):
    restored = pickle.loads(pickle.dumps(vocab))
    assert restored.encode("the zebra runs") == vocab.encode("the zebra runs")


def test_wrapping_a_tokenizer_checks_special_ids():
    good = Tokenizer(WordLevel({"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3, "x": 4}, unk_token="<unk>"))
    assert Vocabulary(good).encode("x") == [4]
    swapped = Tokenizer(WordLevel({"<pad>": 0, "<bos>": 1, "<unk>": 2, "<eos>": 3}, unk_token="<unk>"))
    with pytest.raises(ValueError, match="'<eos>' has id 3, expected id 2"):
        Vocabulary(swapped)
    missing = Tokenizer(WordLevel({"<pad>": 0, "<s>": 1, "<eos>": 2, "<unk>": 3}, unk_token="<unk>"))
    with pytest.raises(ValueError, match="'<bos>' is missing"):
        Vocabulary(missing)
    with pytest.raises(ValueError, match="'<eos>'"):
        Vocabulary.from_json(swapped.to_str())
