"""FeatureCache: built features equal the encoder's, gaps are detected, save/load round trip and metadata checks."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from modules.encoders import ConvGridEncoder
from modules.feature_cache import FeatureCache

NUM_ITEMS, SIZE = 10, 16  # 16x16 images -> 4x4 grid of 8 features with channels (4, 8)


class Images(Dataset):
    """Deterministic random images, each returned with its item index."""

    def __init__(self, num_items: int = NUM_ITEMS, size: int = SIZE) -> None:
        self.images = torch.rand(num_items, 3, size, size, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return self.images.size(0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "index": torch.tensor(index)}


def frozen_encoder() -> ConvGridEncoder:
    torch.manual_seed(0)
    encoder = ConvGridEncoder(channels=(4, 8), strided=False)
    with torch.no_grad():  # non-default BatchNorm statistics, so eval vs train mode makes a difference
        for module in encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return encoder.requires_grad_(False)


def loader(dataset: Dataset, batch_size: int = 4, **kwargs) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(1),
                      **kwargs)


def build(encoder: nn.Module | None = None, dataset: Dataset | None = None, **kwargs) -> FeatureCache:
    return FeatureCache.build(encoder or frozen_encoder(), loader(dataset or Images()), NUM_ITEMS, "cpu",
                              progress=False, **kwargs)


def test_lookup_equals_running_the_encoder():
    dataset = Images()
    encoder = frozen_encoder().train()
    before = {name: buffer.clone() for name, buffer in encoder.named_buffers()}
    cache = build(encoder, dataset)
    assert encoder.training  # its mode is restored
    assert all(torch.equal(buffer, before[name]) for name, buffer in encoder.named_buffers())  # ran in eval
    assert cache.features.shape == (NUM_ITEMS, 16, 8) and cache.features.dtype == torch.float16
    assert len(cache) == NUM_ITEMS and cache.nbytes == NUM_ITEMS * 16 * 8 * 2
    index = torch.tensor([7, 0, 3, 3])
    features = cache.lookup(index, "cpu")
    with torch.no_grad():
        expected = encoder.eval()(dataset.images[index])  # [4, 16, 8]
    assert features.dtype == torch.float32 and features.shape == (4, 16, 8)
    torch.testing.assert_close(features, expected, atol=2e-3, rtol=2e-3)
    assert not torch.equal(features, expected.half().float().roll(1, 0))  # rows are not mixed up


def test_float32_storage_is_exact():
    dataset = Images()
    encoder = frozen_encoder()
    cache = build(encoder, dataset, dtype=torch.float32)
    with torch.no_grad():
        expected = encoder.eval()(dataset.images)
    assert torch.equal(cache.lookup(torch.arange(NUM_ITEMS)), expected)


def test_missing_items_are_detected_and_counted():
    dataset = Subset(Images(), [i for i in range(NUM_ITEMS) if i not in (3, 8)])
    with pytest.raises(ValueError, match=r"2 of 10 items.*\[3, 8\]"):
        build(dataset=dataset)
    with pytest.raises(ValueError, match=r"2 of 10 items"):  # a loader that drops its last batch of 2
        FeatureCache.build(frozen_encoder(), loader(Images(), drop_last=True), NUM_ITEMS, "cpu", progress=False)


def test_out_of_range_indices_and_bad_batches_are_refused():
    with pytest.raises(ValueError, match=r"indices \[10, 11\] out of range"):
        FeatureCache.build(frozen_encoder(), loader(Images(12), batch_size=12), NUM_ITEMS, "cpu", progress=False)
    batches = [{"image": torch.rand(2, 3, SIZE, SIZE)}]
    with pytest.raises(ValueError, match="'index' field"):
        FeatureCache.build(frozen_encoder(), batches, NUM_ITEMS, "cpu", progress=False)
    with pytest.raises(ValueError, match="no batches"):
        FeatureCache.build(frozen_encoder(), [], NUM_ITEMS, "cpu", progress=False)


def test_trainable_encoder_is_refused():
    with pytest.raises(ValueError, match="stale features"):
        build(ConvGridEncoder(channels=(4, 8), strided=False))


def test_features_that_overflow_float16_are_refused():
    class Huge(nn.Module):  # no parameters: frozen
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.flatten(2).transpose(1, 2) * 1e6  # [B, H*W, 3]

    with pytest.raises(ValueError, match="not finite in torch.float16"):
        build(Huge())
    assert build(Huge(), dtype=torch.float32).features.shape == (NUM_ITEMS, SIZE * SIZE, 3)


def test_save_load_round_trip(tmp_path):
    encoder = frozen_encoder()
    cache = build(encoder, split="train")
    path = tmp_path / "sub" / "features.pt"
    cache.save(path)
    assert path.is_file() and not list(path.parent.glob("*.partial"))
    expected = FeatureCache.describe(encoder, (SIZE, SIZE), split="train")
    assert cache.metadata == expected
    assert expected["encoder"] == "ConvGridEncoder" and expected["image_size"] == [SIZE, SIZE]
    loaded = FeatureCache.load(path, expected=expected)
    assert torch.equal(loaded.features, cache.features) and loaded.metadata == cache.metadata
    index = torch.tensor([9, 2])
    assert torch.equal(loaded.lookup(index), cache.lookup(index))
    assert torch.equal(FeatureCache.load(path).features, cache.features)  # no expectation: no check


def test_load_names_the_metadata_that_differs(tmp_path):
    encoder = frozen_encoder()
    path = tmp_path / "features.pt"
    build(encoder, split="train").save(path)
    wrong = FeatureCache.describe(encoder, 32, split="val")
    with pytest.raises(ValueError, match=r"image_size: cached \[16, 16\], expected \[32, 32\].*split: cached 'train'"):
        FeatureCache.load(path, expected=wrong)
    with pytest.raises(ValueError, match=r"arch: cached '<absent>', expected 'resnet18'"):
        FeatureCache.load(path, expected={"arch": "resnet18"})
    with pytest.raises(FileNotFoundError, match="no cache file"):
        FeatureCache.load(tmp_path / "nothing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a feature cache"):
        FeatureCache.load(tmp_path / "other.pt")


def test_lookup_refuses_out_of_range_indices():
    cache = build()
    with pytest.raises(IndexError, match=r"\[10\] out of range"):
        cache.lookup(torch.tensor([0, 10]))
