"""text.vocabulary for translation: BPE and unsplit word-level vocabularies that decode to detokenised text."""

import pickle

import pytest
import torch

from text.vocabulary import VOCABULARY_KINDS, Vocabulary, build_vocabulary

SENTENCES = [
    "l'homme, qui a vingt-et-un ans.",
    "Aujourd'hui, c'est l'été : il fait très chaud !",
    "Où est la bibliothèque ? Je ne sais pas...",
    "Les enfants jouent au football près de l'école.",
    "Der Mann, der einundzwanzig Jahre alt ist.",
    "Die Straße ist nass; es hat geregnet.",
    "Können Sie mir bitte helfen?",
    "Ein schwarz-weißer Hund läuft über die Wiese.",
    "The man's dog isn't here -- it's outside.",
    'A well-known author wrote "Hello, world!" in 1999.',
    "Two children (a boy and a girl) are playing.",
    "She said: 'it's twenty-one o'clock'... no!",
]
# Repeats so that pairs are frequent enough to merge with min_frequency=2.
CORPUS = SENTENCES * 3


@pytest.fixture(scope="module")
def bpe() -> Vocabulary:
    return Vocabulary.build_bpe(CORPUS, vocab_size=300, min_frequency=2)


def test_bpe_special_ids_are_fixed(bpe):
    assert bpe.kind == "bpe"
    assert bpe.words([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    for token, i in [("<pad>", 0), ("<bos>", 1), ("<eos>", 2), ("<unk>", 3)]:
        assert bpe.tokenizer.token_to_id(token) == i
    # a literal special string in the text is one id, as for word-level vocabularies
    assert bpe.encode("<unk>") == [bpe.unk_id]


def test_bpe_learns_subwords(bpe):
    ids = bpe.encode("l'homme, qui a vingt-et-un ans.")
    assert len(ids) < len("l'homme, qui a vingt-et-un ans.")  # merges happened: fewer pieces than characters
    assert bpe.unk_id not in ids
    pieces = bpe.words(ids)
    assert pieces[0].startswith("▁")
    assert "".join(pieces).replace("▁", " ").strip() == "l'homme, qui a vingt-et-un ans."


@pytest.mark.parametrize("sentence", SENTENCES)
def test_bpe_decode_inverts_encode(bpe, sentence):
    assert bpe.decode(bpe.encode(sentence)) == sentence
    assert bpe.decode([bpe.bos_id, *bpe.encode(sentence), bpe.eos_id, bpe.pad_id]) == sentence


def test_bpe_normalises_whitespace_and_unicode(bpe):
    assert bpe.decode(bpe.encode("  l'homme,\tqui  a\nvingt-et-un ans. ")) == "l'homme, qui a vingt-et-un ans."
    assert bpe.encode("ｌ'homme") == bpe.encode("l'homme")  # NFKC folds full-width letters
    lower = Vocabulary.build_bpe(CORPUS, vocab_size=300, lowercase=True)
    assert lower.decode(lower.encode("Die Straße ist NASS.")) == "die straße ist nass."


def test_bpe_unseen_characters_map_to_unk(bpe):
    ids = bpe.encode("漢")
    assert bpe.unk_id in ids
    assert bpe.encode("l'homme 漢字 ans").count(bpe.unk_id) == 1  # a run of unknown characters is one <unk>
    assert bpe.decode(bpe.encode("l'homme 漢 ans")) == "l'homme <unk> ans"
    assert bpe.decode(bpe.encode("caf漢")) == "caf<unk>"


def test_bpe_json_round_trip(bpe):
    restored = Vocabulary.from_json(bpe.to_json())
    assert restored.to_json() == bpe.to_json()
    assert len(restored) == len(bpe) and restored.kind == "bpe"
    for text in [*SENTENCES, "l'homme 漢 ans", "", "unseen Wörter, tout-à-fait!"]:
        ids = bpe.encode(text)
        assert restored.encode(text) == ids
        assert restored.decode(ids) == bpe.decode(ids)
        assert restored.words(ids) == bpe.words(ids)
    assert pickle.loads(pickle.dumps(bpe)).encode(SENTENCES[0]) == bpe.encode(SENTENCES[0])


def test_bpe_is_deterministic(bpe):
    again = Vocabulary.build_bpe(CORPUS, vocab_size=300, min_frequency=2)
    reordered = Vocabulary.build_bpe(list(reversed(CORPUS)), vocab_size=300, min_frequency=2)
    assert again.to_json() == bpe.to_json()
    assert reordered.to_json() == bpe.to_json()
    assert Vocabulary.build_bpe(iter(CORPUS), vocab_size=300).to_json() == bpe.to_json()  # any iterable


@pytest.mark.parametrize("vocab_size", [20, 60, 120])
def test_bpe_vocab_size_is_respected(vocab_size):
    alphabet = {c for s in SENTENCES for c in s.replace(" ", "▁")} | {"▁"}
    assert len(alphabet) > 60 - 4  # the small sizes must cut the alphabet
    vocab = Vocabulary.build_bpe(CORPUS, vocab_size=vocab_size)
    assert len(vocab) <= vocab_size
    assert vocab.words([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    # rare characters were dropped: they encode to <unk>, never crash
    for sentence in SENTENCES:
        assert len(vocab.decode(vocab.encode(sentence))) > 0
    # the cut is deterministic too (the trainer alone breaks count ties in hash order)
    for _ in range(3):
        assert Vocabulary.build_bpe(list(reversed(CORPUS)), vocab_size=vocab_size).to_json() == vocab.to_json()


def test_bpe_stops_early_on_a_small_corpus():
    vocab = Vocabulary.build_bpe(CORPUS, vocab_size=8000, min_frequency=2)
    assert len(vocab) < 8000
    assert all(vocab.decode(vocab.encode(s)) == s for s in SENTENCES)


def test_bpe_arguments_are_checked():
    with pytest.raises(ValueError, match="vocab_size"):
        Vocabulary.build_bpe(CORPUS, vocab_size=4)
    with pytest.raises(ValueError, match="min_frequency"):
        Vocabulary.build_bpe(CORPUS, min_frequency=0)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        Vocabulary.build_bpe(["a", 3])
    with pytest.raises(TypeError, match="single str"):
        Vocabulary.build_bpe("a sentence")


def test_bpe_encode_batch_pads_and_decode_batch_inverts(bpe):
    texts = [SENTENCES[0], "", SENTENCES[7]]
    ids, lengths = bpe.encode_batch(texts)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    expected = [len(bpe.encode(t)) + 2 for t in texts]
    assert lengths.tolist() == expected and ids.shape == (3, max(expected))
    assert ids[:, 0].tolist() == [bpe.bos_id] * 3
    assert ids[1, :2].tolist() == [bpe.bos_id, bpe.eos_id]
    assert torch.equal(ids != bpe.pad_id, torch.arange(ids.shape[1])[None, :] < lengths[:, None])
    assert bpe.decode_batch(ids) == texts
    truncated, lengths = bpe.encode_batch(texts, max_len=3)
    assert lengths.tolist() == [5, 2, 5]
    assert truncated[0].tolist() == [bpe.bos_id, *bpe.encode(texts[0])[:3], bpe.eos_id]


def test_word_level_without_punctuation_split_round_trips():
    vocab = Vocabulary.build(CORPUS, split_punctuation=False, lowercase=True)
    assert vocab.kind == "word"
    for sentence in SENTENCES:
        assert vocab.decode(vocab.encode(sentence)) == sentence.lower()
    assert vocab.words(vocab.encode("L'homme, qui")) == ["l'homme,", "qui"]
    assert Vocabulary.split_words("l'homme, qui", split_punctuation=False) == ["l'homme,", "qui"]
    assert vocab.decode(vocab.encode(" l'homme,\tqui  a ")) == "l'homme, qui a"  # whitespace runs -> one space
    assert vocab.decode(vocab.encode("qui 漢 ans.")) == "qui <unk> ans."  # "l'homme" alone is unseen too
    restored = Vocabulary.from_json(vocab.to_json())
    assert restored.encode(SENTENCES[1]) == vocab.encode(SENTENCES[1])
    assert restored.decode(vocab.encode(SENTENCES[1])) == SENTENCES[1].lower()


def test_word_level_default_still_splits_punctuation():
    vocab = Vocabulary.build(CORPUS)
    assert vocab.decode(vocab.encode("l'homme, qui")) == "l ' homme , qui"


def test_build_vocabulary_dispatches():
    assert VOCABULARY_KINDS == ("word", "bpe")
    word = build_vocabulary("word", CORPUS)
    assert word.kind == "word"
    assert all(word.decode(word.encode(s)) == s for s in SENTENCES)  # case kept, punctuation attached
    capped = build_vocabulary("word", CORPUS, vocab_size=10)
    assert len(capped) == 10
    bpe = build_vocabulary("bpe", CORPUS, vocab_size=200, min_count=2)
    assert bpe.kind == "bpe" and len(bpe) <= 200
    assert bpe.to_json() == Vocabulary.build_bpe(CORPUS, vocab_size=200, min_frequency=2).to_json()
    assert all(bpe.decode(bpe.encode(s)) == s for s in SENTENCES)
    with pytest.raises(ValueError, match=r"'char'.*\['word', 'bpe'\]"):
        build_vocabulary("char", CORPUS)
    with pytest.raises(ValueError, match="vocab_size"):
        build_vocabulary("bpe", CORPUS, vocab_size=None)
