"""A streaming ``torch.utils.data.IterableDataset`` over a dataset's split.

Sample ``k`` (k = 0, 1, 2, ...) is drawn from clip ``order_e[k % n]`` where
``order_e`` is a seeded permutation of the split for epoch ``e = k // n``,
with the random choices of ``samples.make_sample`` seeded by (seed, k). Each
process of a distributed run takes ``k = start + rank + world * j``, each
DataLoader worker every ``num_workers``-th of those, so a run's data depends
only on the seed and the step it starts from (resume), never on timing.
Clips are memory-mapped when a sample needs them and dropped after: memory
is independent of the dataset's size (one clip per worker).
"""
from __future__ import annotations

import numpy as np
import torch.utils.data

from backend.training.data import layout

from .samples import make_sample


class ClipStream(torch.utils.data.IterableDataset):
    def __init__(self, root: str, split: str = "train", *, seed: int = 0, window: int = 1, start: int = 0,
                 rank: int = 0, world: int = 1, mask_block: int = 10, drop_reference: float = 0.1,
                 limit: int | None = None):
        super().__init__()
        self.root = root
        self.manifest = layout.read_manifest(root)
        self.clips = layout.split_indices(root, self.manifest, split)
        self.seed, self.window, self.start = int(seed), int(window), int(start)
        self.rank, self.world = int(rank), int(world)
        self.mask_block, self.drop_reference = mask_block, drop_reference
        self.limit = limit   # samples per process (None: endless)

    def clip_for(self, k: int) -> int:
        n = len(self.clips)
        order = np.random.default_rng([self.seed, 11, k // n]).permutation(n)
        return self.clips[int(order[k % n])]

    def sample(self, k: int) -> dict:
        clip = layout.load_clip(self.root, self.clip_for(k))
        rng = np.random.default_rng([self.seed, 13, k])
        out = make_sample(clip, rng, window=self.window, mask_block=self.mask_block,
                          drop_reference=self.drop_reference)
        out["index"] = k
        return out

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        j = wid
        while self.limit is None or j < self.limit:
            yield self.sample(self.start + self.rank + self.world * j)
            j += nw


def collate(samples: list) -> list:
    """Samples stay a list of dicts: the trainer builds the conditioning per sample."""
    return samples
