"""datamodules.sampling: epoch-carrying indices, sharding, determinism, DDP batch equivalence."""

from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Dataset, DistributedSampler

from datamodules.sampling import CurriculumSampler, EpochSeededSampler, make_dataloader, split_index


class IndexDataset(Dataset):
    """Returns ``(epoch, i)`` decoded from the sampler index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int) -> torch.Tensor:
        return torch.tensor(split_index(idx, self.n))  # [2] = epoch, i


def trainer(world_size: int, rank: int) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, global_rank=rank)


def test_split_index():
    assert split_index(0, 7) == (0, 0)
    assert split_index(6, 7) == (0, 6)
    assert split_index(3 * 7 + 5, 7) == (3, 5)
    with pytest.raises(ValueError):
        split_index(1, 0)


@pytest.mark.parametrize("shuffle", [False, True])
def test_yields_epoch_offset_of_distributed_sampler_indices(shuffle):
    ds = IndexDataset(10)
    for epoch in (0, 3):
        ours = EpochSeededSampler(ds, num_replicas=2, rank=1, shuffle=shuffle, seed=5)
        ref = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=shuffle, seed=5)
        ours.set_epoch(epoch)
        ref.set_epoch(epoch)
        assert list(ours) == [epoch * 10 + i for i in ref]
        assert len(ours) == len(ref) == 5


@pytest.mark.parametrize("shuffle", [False, True])
def test_two_ranks_are_disjoint_and_cover_one_epoch(shuffle):
    ds = IndexDataset(10)
    shards = []
    for rank in (0, 1):
        s = EpochSeededSampler(ds, num_replicas=2, rank=rank, shuffle=shuffle, seed=0)
        s.set_epoch(2)
        shards.append(set(s))
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == set(range(20, 30))


def test_uneven_length_pads_to_cover():
    ds = IndexDataset(11)
    shards = [list(EpochSeededSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(shards[0]) | set(shards[1]) == set(range(11))


def test_shuffle_is_deterministic_by_seed_and_epoch():
    ds = IndexDataset(50)

    def order(seed, epoch):
        s = EpochSeededSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=seed)
        s.set_epoch(epoch)
        return [i % 50 for i in s]

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)
    assert order(0, 1) != list(range(50))
    assert sorted(order(0, 1)) == list(range(50))


@pytest.mark.parametrize("epoch", [0, 1])
def test_one_vs_two_processes_same_global_batches(epoch):
    ds, b = IndexDataset(40), 4
    loaders = [
        make_dataloader(ds, batch_size=b, shuffle=True, seed=7, num_workers=0, trainer=trainer(2, r))
        for r in (0, 1)
    ]
    single = make_dataloader(ds, batch_size=2 * b, shuffle=True, seed=7, num_workers=0, trainer=None)
    for dl in (*loaders, single):
        dl.sampler.set_epoch(epoch)
    batches0, batches1, ref = (list(dl) for dl in (*loaders, single))
    assert len(batches0) == len(batches1) == len(ref) == 5
    for x0, x1, x in zip(batches0, batches1, ref, strict=True):
        assert (x0[:, 0] == epoch).all() and (x[:, 0] == epoch).all()
        union = set(x0[:, 1].tolist()) | set(x1[:, 1].tolist())
        assert len(union) == 2 * b and union == set(x[:, 1].tolist())


def test_make_dataloader_settings():
    ds = IndexDataset(12)
    dl = make_dataloader(ds, batch_size=5, shuffle=False, seed=3, num_workers=0, drop_last=True)
    s = dl.sampler
    assert isinstance(s, EpochSeededSampler) and isinstance(s, DistributedSampler)
    assert (s.num_replicas, s.rank, s.shuffle, s.seed) == (1, 0, False, 3)
    assert dl.persistent_workers is False and dl.drop_last and len(dl) == 2
    assert dl.pin_memory == torch.cuda.is_available()
    dl2 = make_dataloader(ds, batch_size=5, shuffle=True, seed=3, num_workers=1, trainer=trainer(3, 2))
    assert (dl2.sampler.num_replicas, dl2.sampler.rank, dl2.sampler.shuffle) == (3, 2, True)
    assert dl2.persistent_workers is True and dl2.num_workers == 1


def test_persistent_workers_see_the_epoch():
    """The worker's dataset copy never sees set_epoch; the index tells it the epoch."""
    dl = make_dataloader(IndexDataset(6), batch_size=3, shuffle=True, seed=0, num_workers=1)
    for epoch in (0, 1, 2):
        dl.sampler.set_epoch(epoch)
        got = torch.cat(list(dl))  # [6, 2]
        assert (got[:, 0] == epoch).all()
        assert sorted(got[:, 1].tolist()) == list(range(6))


def test_lightning_keeps_sampler_and_sets_epoch():
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[int, int]] = []

        def training_step(self, batch, _):
            self.seen += [(self.current_epoch, e) for e in batch[:, 0].tolist()]
            return (self.w - 1).pow(2).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return make_dataloader(
                IndexDataset(8), batch_size=4, shuffle=True, seed=0, num_workers=0, trainer=self.trainer
            )

    model = Recorder()
    t = pl.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    t.fit(model)
    assert isinstance(t.train_dataloader.sampler, EpochSeededSampler)
    assert len(model.seen) == 24
    assert all(cur == e for cur, e in model.seen)


def test_num_workers_auto_is_zero_on_cpu_and_several_per_gpu(monkeypatch):
    from types import SimpleNamespace

    from datamodules.sampling import resolve_num_workers

    class CPUAccelerator: ...

    class CUDAAccelerator: ...

    assert resolve_num_workers(3) == 3
    assert resolve_num_workers("auto", None) == 0
    assert resolve_num_workers("auto", SimpleNamespace(accelerator=CPUAccelerator(), num_devices=1)) == 0
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    gpu = SimpleNamespace(accelerator=CUDAAccelerator(), num_devices=4)
    assert resolve_num_workers("auto", gpu) == 3
    with pytest.raises(ValueError, match="num_workers"):
        resolve_num_workers(-1)


def test_curriculum_starts_the_first_epoch_with_the_subset_then_samples_as_usual():
    ds, subset = IndexDataset(40), [3, 7, 11]
    plain = EpochSeededSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=4)
    curriculum = CurriculumSampler(ds, [(subset, 7)], num_replicas=2, rank=1, seed=4)
    first = list(curriculum)
    assert len(first) == len(curriculum) == len(list(plain)) == 20              # the epoch keeps its length
    assert set(first[:4]) <= set(subset)                                        # ceil(7 / 2) = 4 draws on this rank
    assert sorted(first[:3]) == subset                                          # each subset item once per round
    assert first[4:] == list(plain)[4:]                                         # then the plain shuffled order
    assert first == list(CurriculumSampler(ds, [(subset, 7)], num_replicas=2, rank=1, seed=4))   # deterministic
    for sampler in (curriculum, plain):
        sampler.set_epoch(1)
    assert list(curriculum) == list(plain)                                      # later epochs: no curriculum


def test_curriculum_count_is_over_all_ranks_and_bad_arguments_are_named():
    ds, subset = IndexDataset(40), list(range(0, 40, 2))
    draws = [list(CurriculumSampler(ds, [(subset, 10)], num_replicas=2, rank=r, seed=0))[:5] for r in (0, 1)]
    assert all(i % 2 == 0 for shard in draws for i in shard)
    assert draws[0] != draws[1]                                                 # ranks draw differently
    loader = make_dataloader(ds, batch_size=5, shuffle=True, seed=0, num_workers=0, curriculum=[(subset, 10)])
    assert isinstance(loader.sampler, CurriculumSampler)
    assert all(int(i) % 2 == 0 for batch in list(loader)[:2] for i in batch[:, 1])
    evaluation = make_dataloader(ds, batch_size=5, shuffle=False, seed=0, num_workers=0, curriculum=[(subset, 10)])
    assert not isinstance(evaluation.sampler, CurriculumSampler)                # evaluation never has one
    with pytest.raises(ValueError, match="stage 2: no sample of the stage's subset"):
        CurriculumSampler(ds, [(subset, 5), ([], 5)])
    with pytest.raises(ValueError, match="stage 1: .* count >= 0"):
        CurriculumSampler(ds, [(subset, -1)])


def three_epochs(curriculum: CurriculumSampler, plain: EpochSeededSampler) -> list[tuple[list[int], list[int]]]:
    """[(curriculum's indices, plain's indices)] for epochs 0, 1, 2."""
    epochs = []
    for epoch in range(3):
        curriculum.set_epoch(epoch)
        plain.set_epoch(epoch)
        epochs.append((list(curriculum), list(plain)))
    return epochs


def test_a_curriculum_longer_than_an_epoch_continues_into_the_next():
    ds, subset = IndexDataset(10), [2, 4]
    epochs = three_epochs(CurriculumSampler(ds, [(subset, 15)], seed=1), EpochSeededSampler(ds, shuffle=True, seed=1))
    assert {i for i in epochs[0][0]} == {2, 4} and len(epochs[0][0]) == 10         # all of epoch 0
    assert {i for i in epochs[1][0][:5]} == {12, 14}                                 # 5 more, epoch-encoded
    assert epochs[1][0][5:] == epochs[1][1][5:]
    assert epochs[2][0] == epochs[2][1]                                             # then plain


def test_curriculum_stages_follow_each_other_across_epochs():
    ds, easy, middle = IndexDataset(10), [2, 4], [1, 3, 5]
    curriculum = CurriculumSampler(ds, [(easy, 6), (middle, 8), ([9], 0)], seed=3)   # an empty stage is skipped
    epochs = three_epochs(curriculum, EpochSeededSampler(ds, shuffle=True, seed=3))
    assert set(epochs[0][0][:6]) == set(easy) and set(epochs[0][0][6:]) == set(middle)   # 6 easy, 4 middle
    assert {i - 10 for i in epochs[1][0][:4]} == set(middle)                             # 4 more middle in epoch 1
    assert epochs[1][0][4:] == epochs[1][1][4:] and epochs[2][0] == epochs[2][1]         # then plain
    one_stage = CurriculumSampler(ds, [(easy, 6)], seed=3)
    assert list(one_stage)[:6] == epochs[0][0][:6]                       # a first stage draws as it does alone
